import Foundation
#if canImport(FoundationNetworking)
import FoundationNetworking
#endif

/// GETs a worker's HTTP endpoint: status and body, nil when nothing answers.
public func httpGet(_ url: String) async -> (status: Int, body: String)? {
    var request = URLRequest(url: URL(string: url)!)
    request.timeoutInterval = 5
    guard let (data, response) = try? await URLSession.shared.data(for: request), let http = response as? HTTPURLResponse else { return nil }
    return (http.statusCode, String(decoding: data, as: UTF8.self))
}

/// Polls `url` until `done` holds for its answer, or `timeout` passes; the last answer.
public func waitForHTTP(_ url: String, timeout: Duration, until done: ((status: Int, body: String)?) -> Bool) async -> (status: Int, body: String)? {
    let deadline = ContinuousClock.now + timeout
    var answer = await httpGet(url)
    while !done(answer), ContinuousClock.now < deadline {
        try? await Task.sleep(for: .milliseconds(250))
        answer = await httpGet(url)
    }
    return answer
}

/// The value of a series in a Prometheus text exposition, e.g. `wms_ready` or
/// `wms_events_total{type="RECEIVING",outcome="applied"}`; summed over the
/// series whose name and labels start with `prefix`.
public func metricValue(_ exposition: String, _ prefix: String) -> Double? {
    let values = exposition.split(separator: "\n").filter { !$0.hasPrefix("#") && $0.hasPrefix(prefix) }
        .compactMap { line in line.split(separator: " ").last.flatMap { Double($0) } }
    return values.isEmpty ? nil : values.reduce(0, +)
}
