//! The `orchestrator` binary: parse, run, print one error line, exit with the contract's code.

fn main() {
    std::process::exit(orchestrator::main_entry(std::env::args_os()));
}
