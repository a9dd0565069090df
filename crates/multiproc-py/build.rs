//! Python-version cfgs (`Py_3_13`, ...) for the finalization check in
//! `lib.rs`, from the interpreter PyO3 builds against.

fn main() {
    pyo3_build_config::use_pyo3_cfgs();
}
