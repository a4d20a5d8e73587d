import ArgumentParser
import Foundation
import WMSOperations

struct Config: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the effective settings, secrets masked, with where each came from.",
        discussion: "Sources: flag, file (the settings file), environment, default. Exits non-zero, naming the setting, if one is missing or malformed.")

    @Flag(help: "As JSON.") var json = false
    @OptionGroup var settings: SettingsOptions

    func run() async throws {
        let effective = try Settings(settings.layers).effective
        if json {
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            print(String(decoding: try encoder.encode(effective), as: UTF8.self))
            return
        }
        let width = effective.map(\.name.count).max() ?? 0
        for setting in effective {
            let name = setting.name.padding(toLength: width, withPad: " ", startingAt: 0)
            let source = setting.source.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0)
            print("\(name)  \(source)  \(setting.value)")
        }
    }
}
