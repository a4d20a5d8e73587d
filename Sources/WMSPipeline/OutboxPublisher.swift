import Kafka
import Logging
import WMSStore

/// Publishes outbox rows in the order given and returns once the broker has
/// acknowledged every one; throws otherwise (then some may have been delivered:
/// publishing them all again is safe, consumers drop duplicates by messageId).
///
/// A dead letter refused as too large (by the topic, or by the producer's own
/// `message.max.bytes`) is sent again cut, smaller each time it is refused
/// (`OutboundMessages.deadLetterCuts`), so that one message never holds a partition.
/// What the topic accepts is learnt from the refusal: no size is assumed.
///
/// Blocking: runs on the pipeline's dedicated thread.
struct OutboxPublisher {
    let producer: KafkaProducer
    let logger: Logger

    func publish(_ records: [OutboxRecord]) throws {
        // Per row, the forms still to try after the one being sent.
        var smaller = records.map { OutboundMessages.isDeadLetter($0) ? OutboundMessages.deadLetterCuts($0)[...] : [] }
        var sending = records.indices.map { ($0, records[$0]) }
        while !sending.isEmpty {
            let results = try producer.send(sending.map { OutboundMessages.kafkaMessage($0.1) })
            var again: [(Int, OutboxRecord)] = []
            for ((index, sent), result) in zip(sending, results) {
                guard case .failure(let error) = result else { continue }
                guard error.isMessageTooLarge, let cut = smaller[index].popFirst() else { throw error }
                logger.warning("dead letter too large for its topic, sent cut", metadata: [
                    "message_id": "\(sent.messageId)", "topic": "\(sent.topic)", "bytes": "\(sent.payload.count)",
                    "cut_to": "\(cut.payload.count)", "error": "\(error)",
                ])
                again.append((index, cut))
            }
            sending = again
        }
    }
}
