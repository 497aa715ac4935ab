use wharf::{Handler, Message};

async fn handler(_msg: Message) {}

fn main() {
    let _service = handler.into_service();
}
