fn main() -> std::process::ExitCode {
    opskit::run()
}
