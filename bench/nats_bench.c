/* The native C client side of `make bench-compare` for NATS JetStream (libnats).
 *
 *   nats_bench produce URLS SUBJECT RECORDS SIZE WINDOW RATE
 *       RECORDS acknowledged publishes of SIZE bytes with up to WINDOW awaiting their ack;
 *       RATE records/s (0: as fast as acks allow). Every ack's latency (publish call to
 *       ack) is kept, so the same mode gives throughput and the fixed-rate percentiles.
 *   nats_bench consume URLS STREAM SUBJECT DURABLE RECORDS
 *       a pull consumer (no acks) reads RECORDS stored messages of SUBJECT.
 *
 * URLS is a comma-separated list of nats:// addresses. One JSON line goes to stdout; errors
 * go to stderr with a non-zero exit. Every wait is bounded (MaxWait, fetch timeouts,
 * a deadline), so a dead cluster ends the program instead of hanging it.
 */
#include <nats/nats.h>

#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MB 1000000.0
#define DEADLINE_S 600

static int64_t *latencies_ns;
static atomic_long acked;
static atomic_long failed;

static int64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static void sleep_ns(int64_t ns) {
    struct timespec ts = {(time_t)(ns / 1000000000LL), (long)(ns % 1000000000LL)};
    nanosleep(&ts, NULL);
}

static int die(const char *what, natsStatus s) {
    fprintf(stderr, "nats_bench: %s: %s\n", what, natsStatus_GetText(s));
    nats_PrintLastErrorStack(stderr);
    return 2;
}

/* The send time travels in the payload's first 8 bytes: the handler needs no lookup. */
static void on_ack(jsCtx *js, natsMsg *msg, jsPubAck *pa, jsPubAckErr *pae, void *closure) {
    (void)js;
    (void)closure;
    if (pa != NULL && natsMsg_GetDataLength(msg) >= 8) {
        int64_t sent;
        memcpy(&sent, natsMsg_GetData(msg), sizeof sent);
        long i = atomic_fetch_add(&acked, 1);
        latencies_ns[i] = now_ns() - sent;
    } else if (pae != NULL) {
        atomic_fetch_add(&failed, 1);
    }
    natsMsg_Destroy(msg);
}

static int cmp_i64(const void *a, const void *b) {
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

static double pct_ms(const int64_t *sorted, long n, double q) {
    if (n == 0) return 0.0;
    long i = (long)(q * (double)(n - 1) + 0.5);
    if (i >= n) i = n - 1;
    return (double)sorted[i] / 1e6;
}

static natsStatus connect_js(const char *urls, natsConnection **nc, jsCtx **js, int window) {
    natsOptions *opts = NULL;
    natsStatus s = natsOptions_Create(&opts);
    if (s == NATS_OK) {
        char *copy = strdup(urls);
        const char *servers[16];
        int n = 0;
        for (char *tok = strtok(copy, ","); tok != NULL && n < 16; tok = strtok(NULL, ","))
            servers[n++] = tok;
        s = natsOptions_SetServers(opts, servers, n);
        free(copy);
    }
    if (s == NATS_OK) s = natsOptions_SetTimeout(opts, 5000);
    if (s == NATS_OK) s = natsOptions_SetMaxReconnect(opts, 60);
    if (s == NATS_OK) s = natsConnection_Connect(nc, opts);
    natsOptions_Destroy(opts);
    if (s != NATS_OK) return s;
    jsOptions jo;
    jsOptions_Init(&jo);
    jo.Wait = 10000;
    jo.PublishAsync.MaxPending = window;
    jo.PublishAsync.AckHandler = on_ack;
    jo.PublishAsync.StallWait = 10000;
    return natsConnection_JetStream(js, *nc, &jo);
}

static int produce(const char *urls, const char *subject, long records, int size, int window,
                   double rate) {
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    if (size < 8) size = 8;
    latencies_ns = calloc((size_t)records, sizeof *latencies_ns);
    char *payload = malloc((size_t)size);
    if (latencies_ns == NULL || payload == NULL) return die("malloc", NATS_NO_MEMORY);
    memset(payload, 'x', (size_t)size);
    natsStatus s = connect_js(urls, &nc, &js, window);
    if (s != NATS_OK) return die("connect", s);
    int64_t interval = rate > 0 ? (int64_t)(1e9 / rate) : 0;
    int64_t start = now_ns();
    for (long i = 0; i < records && s == NATS_OK; i++) {
        if (interval) {
            int64_t delay = start + i * interval - now_ns();
            if (delay > 0) sleep_ns(delay);
        }
        int64_t t = now_ns();
        memcpy(payload, &t, sizeof t);
        s = js_PublishAsync(js, subject, payload, size, NULL);
    }
    if (s != NATS_OK) return die("publish", s);
    jsPubOptions po;
    jsPubOptions_Init(&po);
    po.MaxWait = (int64_t)DEADLINE_S * 1000;
    s = js_PublishAsyncComplete(js, &po);
    double elapsed = (double)(now_ns() - start) / 1e9;
    if (s != NATS_OK) return die("waiting for acks", s);
    long n = atomic_load(&acked);
    if (atomic_load(&failed) > 0 || n != records) {
        fprintf(stderr, "nats_bench: %ld acked, %ld failed of %ld\n", n,
                atomic_load(&failed), records);
        return 3;
    }
    qsort(latencies_ns, (size_t)n, sizeof *latencies_ns, cmp_i64);
    printf("{\"records\": %ld, \"record_size\": %d, \"window\": %d, \"rate\": %.1f, "
           "\"seconds\": %.4f, \"records_per_s\": %.1f, \"mb_per_s\": %.3f, "
           "\"latency_ms\": {\"p50\": %.3f, \"p99\": %.3f, \"p99.9\": %.3f, "
           "\"max\": %.3f}}\n",
           records, size, window, rate, elapsed, (double)records / elapsed,
           (double)records * size / elapsed / MB, pct_ms(latencies_ns, n, 0.50),
           pct_ms(latencies_ns, n, 0.99), pct_ms(latencies_ns, n, 0.999),
           pct_ms(latencies_ns, n, 1.0));
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    free(payload);
    free(latencies_ns);
    return 0;
}

static int consume(const char *urls, const char *stream, const char *subject,
                   const char *durable, long records) {
    natsConnection *nc = NULL;
    jsCtx *js = NULL;
    natsSubscription *sub = NULL;
    jsErrCode jerr = 0;
    natsStatus s = connect_js(urls, &nc, &js, 1);
    if (s != NATS_OK) return die("connect", s);
    jsSubOptions so;
    jsSubOptions_Init(&so);
    so.Stream = stream;
    /* No acks: the reader only tracks its position, as an Odradek or Kafka consumer does
     * (with explicit acks the server stops at max_ack_pending unacknowledged messages). */
    so.Config.AckPolicy = js_AckNone;
    so.Config.DeliverPolicy = js_DeliverAll;
    s = js_PullSubscribe(&sub, js, subject, durable, NULL, &so, &jerr);
    if (s != NATS_OK) return die("pull subscribe", s);
    long seen = 0;
    double bytes = 0;
    int64_t start = now_ns();
    int64_t deadline = start + (int64_t)DEADLINE_S * 1000000000LL;
    while (seen < records && now_ns() < deadline) {
        natsMsgList list = {0};
        long want = records - seen < 1000 ? records - seen : 1000;
        s = natsSubscription_Fetch(&list, sub, (int)want, 10000, &jerr);
        if (s == NATS_TIMEOUT) continue;
        if (s != NATS_OK) return die("fetch", s);
        for (int i = 0; i < list.Count; i++) bytes += natsMsg_GetDataLength(list.Msgs[i]);
        seen += list.Count;
        natsMsgList_Destroy(&list);
    }
    double elapsed = (double)(now_ns() - start) / 1e9;
    if (seen < records) {
        fprintf(stderr, "nats_bench: read %ld of %ld within %d s\n", seen, records,
                DEADLINE_S);
        return 3;
    }
    printf("{\"records\": %ld, \"seconds\": %.4f, \"records_per_s\": %.1f, "
           "\"mb_per_s\": %.3f, \"bytes\": %.0f}\n",
           seen, elapsed, (double)seen / elapsed, bytes / elapsed / MB, bytes);
    natsSubscription_Destroy(sub);
    jsCtx_Destroy(js);
    natsConnection_Destroy(nc);
    return 0;
}

int main(int argc, char **argv) {
    int rc = 1;
    if (argc == 8 && strcmp(argv[1], "produce") == 0) {
        rc = produce(argv[2], argv[3], atol(argv[4]), atoi(argv[5]), atoi(argv[6]),
                     atof(argv[7]));
    } else if (argc == 7 && strcmp(argv[1], "consume") == 0) {
        rc = consume(argv[2], argv[3], argv[4], argv[5], atol(argv[6]));
    } else if (argc == 2 && strcmp(argv[1], "version") == 0) {
        printf("%s\n", nats_GetVersion());
        rc = 0;
    } else {
        fprintf(stderr,
                "usage: nats_bench produce URLS SUBJECT RECORDS SIZE WINDOW RATE\n"
                "       nats_bench consume URLS STREAM SUBJECT DURABLE RECORDS\n"
                "       nats_bench version\n");
    }
    nats_Close();
    return rc;
}
