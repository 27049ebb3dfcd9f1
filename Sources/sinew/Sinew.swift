import ArgumentParser

@main
struct Sinew: ParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Sinew")
}
