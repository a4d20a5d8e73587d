-- Kafka header values are bytes, or absent (null), and a dead letter keeps the
-- original message's headers byte for byte (contract, section 6). jsonb text
-- cannot hold every byte string (not UTF-8, or \u0000), so a value is now kept
-- hex-encoded: headers is [{"name": ..., "hex": "..." or null}], in order.

-- Rows written before held [{"name": ..., "value": text}]: the text's UTF-8 bytes.
UPDATE outbox SET headers = (
    SELECT jsonb_agg(jsonb_build_object('name', h ->> 'name', 'hex', encode(convert_to(h ->> 'value', 'UTF8'), 'hex'))
                     ORDER BY position)
    FROM jsonb_array_elements(headers) WITH ORDINALITY AS e(h, position))
WHERE headers <> '[]';

COMMENT ON COLUMN outbox.headers IS
    '[{"name": text, "hex": the value''s bytes hex-encoded, or null for an absent value}], in order';
