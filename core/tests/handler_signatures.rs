//! Wrong handler signatures fail to compile with a message that says what a handler is
//! (`#[diagnostic::on_unimplemented]` on `Handler` and `FromMessage`). The expected
//! compiler output is in `tests/ui/*.stderr`; regenerate it with `TRYBUILD=overwrite`
//! after a deliberate change of the diagnostics or of the toolchain.

#[test]
fn wrong_handler_signatures_do_not_compile() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
