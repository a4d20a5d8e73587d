#ifndef WMS_CRDKAFKA_SHIM_H
#define WMS_CRDKAFKA_SHIM_H
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

/* rd_kafka_producev() is variadic and its RD_KAFKA_V_* arguments are macros,
 * neither of which Swift can call: this fixed-signature wrapper can.
 * The payload and key are copied (RD_KAFKA_MSG_F_COPY); on success librdkafka
 * owns `headers`, on failure the caller still does. */
static inline rd_kafka_resp_err_t wms_rd_kafka_produce(
    rd_kafka_t *rk, const char *topic, int32_t partition,
    const void *payload, size_t payload_len,
    const void *key, size_t key_len,
    rd_kafka_headers_t *headers, void *opaque) {
    if (headers == NULL) {
        return rd_kafka_producev(rk,
            RD_KAFKA_V_TOPIC(topic),
            RD_KAFKA_V_PARTITION(partition),
            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_VALUE((void *)payload, payload_len),
            RD_KAFKA_V_KEY(key, key_len),
            RD_KAFKA_V_OPAQUE(opaque),
            RD_KAFKA_V_END);
    }
    return rd_kafka_producev(rk,
        RD_KAFKA_V_TOPIC(topic),
        RD_KAFKA_V_PARTITION(partition),
        RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_VALUE((void *)payload, payload_len),
        RD_KAFKA_V_KEY(key, key_len),
        RD_KAFKA_V_HEADERS(headers),
        RD_KAFKA_V_OPAQUE(opaque),
        RD_KAFKA_V_END);
}
#endif
