use wharf::{Handler, HandlerError, State};

#[derive(Clone)]
struct Db;

#[derive(Clone)]
struct Cache;

async fn handler(State(_db): State<Db>) -> Result<(), HandlerError> {
    Ok(())
}

fn main() {
    // A `Cache` is given, a `Db` asked for (and `Db: FromRef<Cache>` does not hold).
    let _service = handler.with_state(Cache);
}
