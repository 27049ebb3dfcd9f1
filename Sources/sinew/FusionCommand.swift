import ArgumentParser
import Foundation
import SinewFusion

struct Fusion: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Sensor fusion: evaluate the orientation estimator on recorded IMU data.",
        subcommands: [Eval.self]
    )

    struct Eval: ParsableCommand {
        static let configuration = CommandConfiguration(
            abstract:
                "Run the orientation estimator over BROAD-format CSV files and score it against their ground truth.",
            discussion: """
                Each file has the columns t_s, gyr_x..z (rad/s), acc_x..z (m/s²), mag_x..z (µT), ref_qw..qz (the \
                optical ground truth, sensor → East-North-Up, nan where lost) and movement (1 in motion phases). \
                The metric is BROAD's (Laidig et al., Data 2021): RMSE over the motion samples of the total, heading \
                and inclination angle of q_estimate ⊗ q_reference⁻¹, in degrees, per trial and averaged over trials. \
                One parameter set is used for every trial.
                """)

        @Argument(help: "BROAD-format CSV files.")
        var files: [String]

        @Flag(help: "Print one JSON object {\"trials\": [...], \"mean\": {...}}.")
        var json = false

        @Flag(help: "Use gyroscope and accelerometer only (6-D); heading then starts from the sensor's y axis.")
        var sixD = false

        @Option(help: "Write the estimated quaternions (t_s,q_w,q_x,q_y,q_z) to DIR/<trial>.csv.")
        var output: String?

        func validate() throws {
            if files.isEmpty { throw ValidationError("give at least one BROAD CSV file") }
        }

        func run() throws {
            var trials: [BROADTrial] = []
            for path in files {
                let trial = try BROADTrial.load(path: path)
                // No scored sample would read as a perfect 0.00°.
                guard trial.scoredSampleCount > 0 else {
                    throw CommandFailure(
                        "\(path): no sample to score: the metric needs rows with movement = 1 and a "
                            + "reference orientation (ref_qw … ref_qz not nan)")
                }
                trials.append(trial)
            }
            let summary = BROADEvaluation.evaluate(trials, useMagnetometer: !sixD)
            if let output {
                for result in summary.trials { try BROADEvaluation.writeEstimates(result, directory: output) }
            }
            print(json ? summary.json : summary.table)
        }
    }
}

struct FusionBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fusion",
        abstract: "Cost of one 9-D orientation update (gyroscope, accelerometer, magnetometer), replaying a BROAD file."
    )

    @Argument(help: "A BROAD-format CSV file whose samples are replayed.")
    var file: String

    @Flag(help: "Print one JSON object with update_9d_ns.")
    var json = false

    func run() throws {
        let trial = try BROADTrial.load(path: file)
        let ns = BROADEvaluation.nanosecondsPer9DUpdate(trial)
        if json {
            print(JSONValue.object([("update_9d_ns", .number(ns.rounded1))]).text)
        } else {
            print(
                String(
                    format: "9-D orientation update: %.1f ns per update (goal ≤ 1000 ns), replaying %@", ns, trial.name)
            )
        }
    }
}
