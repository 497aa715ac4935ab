use wharf::{Handler, HandlerError, Message, State};

#[derive(Clone)]
struct Db;

async fn handler(_msg: Message, State(_db): State<Db>) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {
    // The handler asks for `State<Db>`: it needs `.with_state(Db)`.
    let _service = handler.into_service();
}
