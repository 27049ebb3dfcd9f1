import Foundation
import SinewTestSupport
import Testing

/// The fuzz corpus (Fuzz/corpus: seeds and every input the fuzzer once crashed on) replayed through the
/// parsers of outside input by `sinew-fuzz`, built beside `sinew`: none may crash, trap or hang.
@Suite struct FuzzCorpusTests {
    @Test func everyCorpusInputRunsThroughItsParserWithoutCrashing() throws {
        let fuzz = URL(fileURLWithPath: sinewExecutable).deletingLastPathComponent().appendingPathComponent(
            "sinew-fuzz"
        )
        .path
        try #require(
            FileManager.default.isExecutableFile(atPath: fuzz), "sinew-fuzz is not built beside \(sinewExecutable)")
        let corpus = repositoryRoot + "/Fuzz/corpus"
        let inputs = try FileManager.default.contentsOfDirectory(atPath: corpus).filter { $0 != "README.md" }
        try #require(inputs.count >= 10, "the corpus is missing: \(corpus)")
        let result = runProcess("/usr/bin/timeout", ["120", fuzz, corpus])
        #expect(result.status == 0, "\(result.output.suffix(2000))")
        #expect(result.output.contains("\(inputs.count) inputs replayed, none crashed"), "\(result.output.suffix(500))")
    }
}
