import ArgumentParser
import Compression
import EdgeFormat
import Foundation

struct ReportCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Write report.json, report.md and pareto.svg for a folder of artifacts (see scripts/device-artifacts.sh).",
        discussion: """
        The folder holds, per recipe R: R.edge, R.verify.json (compress verify --json) and optionally \
        R.compress.json (compress --json) and R.bench.json (edge-run bench --json: the pp / tg / peak MB \
        columns). Exit codes: 0 all budgets met, 1 error, 3 a recipe missed its budget \
        (the report is written first).
        """
    )

    @Option(name: .long, help: "Model name shown in the report.")
    var model: String = "model"

    @Option(name: .long, help: "Evaluation text named in the report.")
    var text: String = ""

    @Argument(help: "The artifacts folder.")
    var folder: String

    func run() throws {
        let rows = try Report.rows(folder: folder)
        let files: [(String, String)] = [
            ("report.json", Report.json(rows: rows, model: model, text: text).prettyText() + "\n"),
            ("report.md", Report.markdown(rows: rows, model: model, text: text)),
            ("pareto.svg", Report.svg(rows: rows, model: model)),
        ]
        for (name, body) in files {
            let out = try AtomicOutput(destination: folder + "/" + name)
            try out.write(Array(body.utf8))
            try out.commit()
        }
        print("\(folder): report.json, report.md, pareto.svg for \(rows.count) recipes")
        let failed = rows.filter { !$0.budgetOK }
        if !failed.isEmpty {
            FileHandle.standardError.write(Data("budget exceeded: \(failed.map { "\($0.recipe) (\($0.violations.joined(separator: "; ")))" }.joined(separator: ", "))\n".utf8))
            throw ExitCode(3)
        }
    }
}
