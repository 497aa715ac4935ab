use wharf::{Handler, HandlerError};

async fn handler(_count: u32) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {
    let _service = handler.into_service();
}
