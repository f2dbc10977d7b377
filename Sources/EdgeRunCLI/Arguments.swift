import EdgeFormat
import RunSupport
#if canImport(Glibc)
import Glibc
#elseif canImport(Musl)
import Musl
#elseif canImport(Darwin)
import Darwin
#endif

// The command line of `edge-run`, parsed by hand: ArgumentParser brings FoundationEssentials into the
// static binary (7 MB). The grammar is ArgumentParser's, so the tool reads as it did:
// `edge-run SUB MODEL [--opt VALUE | --opt=VALUE | -x VALUE | --flag]...`, `--` ends the options,
// `-h`/`--help`/`help SUB` print the usage on stdout and exit 0, `--version` prints the version.
// A malformed line is one "Error: ..." line naming the option or value, exit 64 (EX_USAGE); a value
// out of range (a subcommand's `validate()`) one line, exit 1; the help texts are laid out as
// ArgumentParser lays them out (79 columns, help at column 26).

/// One option (`valueName` set) or flag a subcommand takes: what it is parsed by and shown as.
struct OptionSpec {
    /// `-p`, `--top-k`: the one spelling.
    let name: String
    /// `<p>` in the usage; nil for a flag.
    var valueName: String?
    let help: String
    /// The default shown in the help ("512", "0.0").
    var defaultValue: String?
    /// The accepted values, for options whose value is one of a few names.
    var values: [String]?
    var required = false

    static func option(_ name: String, _ valueName: String, help: String, default d: String? = nil, values: [String]? = nil, required: Bool = false) -> OptionSpec {
        OptionSpec(name: name, valueName: valueName, help: help, defaultValue: d, values: values, required: required)
    }

    static func flag(_ name: String, help: String) -> OptionSpec { OptionSpec(name: name, help: help) }

    /// An option whose value is one of `T`'s raw values (read with `ParsedArguments.choice`).
    static func choice<T: RawRepresentable & CaseIterable>(_ name: String, _ valueName: String, help: String, default d: T) -> OptionSpec where T.RawValue == String {
        .option(name, valueName, help: help, default: d.rawValue, values: T.allCases.map(\.rawValue))
    }

    /// `--text <text>`, `--json`.
    var synopsis: String { valueName.map { "\(name) <\($0)>" } ?? name }
}

/// A subcommand's name, texts, positional arguments and options.
struct CommandSpec {
    let name: String
    let abstract: String
    var discussion: String?
    /// (name, help) of each positional argument, in order; all are required.
    var arguments: [(name: String, help: String)] = [("model", "The .edge model file.")]
    var options: [OptionSpec] = []

    /// The option or flag spelled `name`.
    func option(_ name: String) -> OptionSpec? { options.first { $0.name == name } }
}

/// A subcommand of `edge-run`: declared by `spec`, built from the parsed line, checked, run.
protocol Subcommand {
    static var spec: CommandSpec { get }
    /// - Throws: `ArgumentError` for a value of the wrong type.
    init(_ arguments: ParsedArguments) throws
    /// Cross-checks the values before anything runs.
    /// - Throws: `UsageError` naming the option and the value.
    func validate() throws
    func run() throws
}

extension Subcommand {
    func validate() throws {}
}

/// A malformed command line: an unknown option, a missing or unparsable value.
struct ArgumentError: Error, CustomStringConvertible {
    let description: String
    init(_ d: String) { description = d }
}

/// One subcommand's words, split into its positional arguments, option values and flags.
struct ParsedArguments {
    let spec: CommandSpec
    private(set) var positionals: [String] = []
    private var values: [String: String] = [:]
    private var flags: Set<String> = []

    /// Parses `words` (what follows the subcommand's name) against `spec`.
    /// - Throws: `ArgumentError` naming the word that does not fit.
    init(_ words: [String], spec: CommandSpec) throws {
        self.spec = spec
        var i = 0
        var optionsEnded = false
        while i < words.count {
            let word = words[i]
            i += 1
            if optionsEnded || !word.hasPrefix("-") || word == "-" || Double(word) != nil {
                guard positionals.count < spec.arguments.count else { throw ArgumentError("Unexpected argument '\(word)'") }
                positionals.append(word)
                continue
            }
            if word == "--" { optionsEnded = true; continue }
            let (name, attached) = word.firstIndex(of: "=").map { (String(word[..<$0]), Optional(String(word[word.index(after: $0)...]))) } ?? (word, nil)
            guard let option = spec.option(name) else { throw ArgumentError("Unknown option '\(word)'") }
            guard option.valueName != nil else {
                if let attached { throw ArgumentError("The flag '\(name)' takes no value, but '\(attached)' was given") }
                flags.insert(name)
                continue
            }
            if let attached {
                values[name] = attached
            } else if i < words.count, !words[i].hasPrefix("-") || Double(words[i]) != nil {
                // A value may start with '-' only as a number (-n -1 is refused by validate(), by name).
                values[name] = words[i]
                i += 1
            } else {
                throw ArgumentError("Missing value for '\(option.synopsis)'")
            }
        }
        if positionals.count < spec.arguments.count {
            throw ArgumentError("Missing expected argument '<\(spec.arguments[positionals.count].name)>'")
        }
        if let missing = spec.options.first(where: { $0.required && values[$0.name] == nil }) {
            throw ArgumentError("Missing expected argument '\(missing.synopsis)'")
        }
    }

    /// Whether the flag `name` was given.
    func flag(_ name: String) -> Bool { flags.contains(name) }

    /// The value of option `name` converted by `convert`, nil when not given.
    /// - Throws: `ArgumentError` naming the option and the value when `convert` refuses it.
    func value<T>(_ name: String, _ convert: (String) -> T?) throws -> T? {
        guard let text = values[name] else { return nil }
        guard let v = convert(text) else {
            var message = "The value '\(text)' is invalid for '\(spec.option(name)?.synopsis ?? name)'"
            if let allowed = spec.option(name)?.values {
                message += ": not one of " + allowed.joined(separator: ", ")
            }
            throw ArgumentError(message)
        }
        return v
    }

    /// The value of option `name`, else its default in the spec (which it must have).
    /// - Throws: `ArgumentError` naming the option and the value when `convert` refuses it.
    func valueOrDefault<T>(_ name: String, _ convert: (String) -> T?) throws -> T {
        if let v = try value(name, convert) { return v }
        guard let d = spec.option(name)?.defaultValue.flatMap(convert) else {
            preconditionFailure("\(spec.name) \(name): no default in the spec")
        }
        return d
    }

    /// The value of a `choice` option, else its default.
    func choice<T: RawRepresentable>(_ name: String) throws -> T where T.RawValue == String { try valueOrDefault(name, T.init(rawValue:)) }

    /// The value of a required option (the parser has checked it is there).
    func required(_ name: String) -> String { values[name]! }
}

// MARK: the tool

/// The top level of `edge-run`: picks the subcommand, prints help and the version, reports errors.
struct Tool {
    let name: String
    let abstract: String
    let version: String
    let subcommands: [Subcommand.Type]

    /// Runs the command line `words` (without the program name) and exits.
    func main(_ words: [String]) -> Never {
        let options = words.prefix { $0 != "--" }
        if options.contains("--version") { print(version); exit(0) }
        guard let first = words.first, first != "-h", first != "--help" else { print(help(), terminator: ""); exit(0) }
        if first == "help" {
            guard words.count > 1 else { print(help(), terminator: ""); exit(0) }
            guard let sub = subcommand(words[1]) else { usageError(ArgumentError("Unexpected argument '\(words[1])'"), spec: nil) }
            print(help(sub.spec), terminator: ""); exit(0)
        }
        guard let sub = subcommand(first) else { usageError(ArgumentError("Unexpected argument '\(first)'"), spec: nil) }
        if options.contains("-h") || options.contains("--help") { print(help(sub.spec), terminator: ""); exit(0) }
        let command: Subcommand
        do {
            command = try sub.init(ParsedArguments(Array(words.dropFirst()), spec: sub.spec))
        } catch {
            usageError(error, spec: sub.spec)
        }
        do {
            try command.validate()
            try command.run()
        } catch {
            exitWithOneLineError(error)
        }
        exit(0)
    }

    private func subcommand(_ name: String) -> Subcommand.Type? { subcommands.first { $0.spec.name == name } }

    /// A malformed command line: one line naming what is wrong, exit 64 (EX_USAGE).
    private func usageError(_ error: Error, spec: CommandSpec?) -> Never {
        let help = spec.map { "\(name) \($0.name) --help" } ?? "\(name) --help"
        exitWithOneLineError(ArgumentError("\(error) (see '\(help)')"), code: 64)
    }

    /// The tool's help: its subcommands.
    func help() -> String {
        var s = paragraph("OVERVIEW: " + abstract) + "\n"
        s += "USAGE: \(name) <subcommand>\n\n"
        s += "OPTIONS:\n" + entry("--version", "Show the version.") + entry("-h, --help", "Show help information.") + "\n"
        s += "SUBCOMMANDS:\n" + subcommands.map { entry($0.spec.name, $0.spec.abstract) }.joined() + "\n"
        s += "  See '\(name) help <subcommand>' for detailed help.\n"
        return s
    }

    /// A subcommand's help: usage, arguments, options with their defaults and values.
    func help(_ spec: CommandSpec) -> String {
        var s = paragraph("OVERVIEW: " + spec.abstract) + "\n"
        if let d = spec.discussion { s += paragraph(d) + "\n" }
        let usage = spec.arguments.map { "<\($0.name)>" } + spec.options.map { $0.required ? $0.synopsis : "[\($0.synopsis)]" }
        s += "USAGE: \(name) \(spec.name) " + usage.joined(separator: " ") + "\n\n"
        s += "ARGUMENTS:\n" + spec.arguments.map { entry("<\($0.name)>", $0.help) }.joined() + "\n"
        s += "OPTIONS:\n"
        for o in spec.options {
            var help = o.help
            if let values = o.values {
                help += " (values: " + values.joined(separator: ", ") + (o.defaultValue.map { "; default: \($0)" } ?? "") + ")"
            } else if let d = o.defaultValue {
                help += " (default: \(d))"
            }
            s += entry(o.synopsis, help)
        }
        s += entry("--version", "Show the version.") + entry("-h, --help", "Show help information.") + "\n"
        return s
    }

    /// `text` wrapped (see `wrap`), ending in a newline.
    private func paragraph(_ text: String) -> String { wrap(text, indent: 0, first: "") }

    /// `  label` with `text` beside it from column 26 (below it when the label is longer), wrapped as `paragraph`.
    private func entry(_ label: String, _ text: String) -> String {
        let head = "  " + label
        if head.count <= 24 { return wrap(text, indent: 26, first: head + String(repeating: " ", count: 26 - head.count)) }
        return head + "\n" + wrap(text, indent: 26, first: String(repeating: " ", count: 26))
    }

    /// The words of `text` on lines of at most 79 columns (80 for the last line, as ArgumentParser
    /// wraps), the first starting with `first`, the others with `indent` spaces.
    private func wrap(_ text: String, indent: Int, first: String) -> String {
        var out = "", line = first, empty = true
        let words = text.split(separator: " ")
        for (i, word) in words.enumerated() {
            if !empty, line.count + 1 + word.count > (i == words.count - 1 ? 80 : 79) {
                out += line + "\n"
                line = String(repeating: " ", count: indent)
                empty = true
            }
            line += (empty ? "" : " ") + word
            empty = false
        }
        return out + line + "\n"
    }
}
