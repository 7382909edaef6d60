// mimalloc: allocation-heavy paths (the server's request handling, JSON rendering) spend far less
// time in the allocator than with glibc's malloc; see docs/benchmarks.md.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    opskit::run()
}
