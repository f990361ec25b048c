/*
 * test_verify_mandrill.c — Mandrill's X-Mandrill-Signature: base64 HMAC-SHA1 of the
 * configured webhook URL followed by every POST parameter's key and decoded value,
 * sorted by key. The self-generated vector (no official one exists), tampered body,
 * signature and URL, wrong and rotated keys, the unsigned setup request (an empty
 * batch), malformed forms, sign -> verify round trips and option validation. The scheme
 * has no timestamp, so there is no tolerance to test.
 */
#include <event2/http.h>

#include "provider_test.h"

/* samples/mandrill/selfgen-vector-signature.json */
#define VEC_KEY "TEST_WEBHOOK_KEY_123"
#define VEC_URL "https://hooks.example.com/esp/mandrill"
#define VEC_SIG "OxwqZ/HlLVs7B810vwfz5yp7Pbk="
#define VEC_FIXTURE MH_FIXTURES_DIR "/mandrill/hard-bounce-signature-vector/body.json"

static const char *const ini =
    "[source.md]\n"
    "provider = mandrill\n"
    "url = " VEC_URL "\n"
    "secret = " VEC_KEY "\n"
    "\n"
    "[source.rotated]\n"
    "provider = mandrill\n"
    "url = " VEC_URL "\n"
    "secret = NEW_KEY_after_reset\n"
    "secret = " VEC_KEY "\n"
    "\n"
    "[source.wrongkey]\n"
    "provider = mandrill\n"
    "url = " VEC_URL "\n"
    "secret = NOT_THE_KEY\n"
    "\n"
    "[source.otherurl]\n"
    "provider = mandrill\n"
    "url = https://hooks.example.com/esp/mandrill/\n"
    "secret = " VEC_KEY "\n";

static struct mh_config *cfg;
static char *vec_body; /* the vector's exact form body, from the golden fixture */
static size_t vec_len;

static int setup(void **state)
{
    (void)state;
    cfg = pt_config(ini);
    FILE *fp = fopen(VEC_FIXTURE, "rb");
    assert_non_null(fp);
    vec_body = malloc(16384);
    vec_len = fread(vec_body, 1, 16383, fp);
    vec_body[vec_len] = '\0';
    fclose(fp);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mh_config_free(cfg);
    free(vec_body);
    return 0;
}

/* Verdict of source for body with an optional signature header; err gets the reason. */
static enum mh_verdict run_err(const char *source, const char *body, size_t len, const char *sig,
                               char *err, size_t errlen)
{
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/md", body, len, 1767225600000LL);
    mh_headers_add(&r.headers, "Content-Type", "application/x-www-form-urlencoded");
    if (sig) mh_headers_add(&r.headers, "X-Mandrill-Signature", sig);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, source), &r);
    if (err) snprintf(err, errlen, "%s", r.err);
    pt_request_free(&r);
    return v;
}

static enum mh_verdict run(const char *source, const char *body, const char *sig)
{
    return run_err(source, body, strlen(body), sig, NULL, 0);
}

/* base64 HMAC-SHA1(key, text), computed independently of the provider. */
static void mac_of(const char *key, const char *text, char *out)
{
    pt_hmac("sha1", key, text, strlen(text), 1, out);
}

static void test_vector(void **state)
{
    (void)state;
    assert_int_equal(run_err("md", vec_body, vec_len, VEC_SIG, NULL, 0), MH_VERIFY_OK);
    /* The vector is HMAC over url + "mandrill_events" + the decoded JSON, as the sheet says. */
    char expect[64];
    const char *json_start = strstr(vec_body, "=") + 1;
    size_t n = 0;
    char *decoded = evhttp_uridecode(json_start, 1, &n);
    char *text = malloc(strlen(VEC_URL) + 16 + n);
    sprintf(text, "%s%s%s", VEC_URL, "mandrill_events", decoded);
    mac_of(VEC_KEY, text, expect);
    assert_string_equal(expect, VEC_SIG);
    free(text);
    free(decoded);
}

static void test_rotation(void **state)
{
    (void)state;
    /* The old key still verifies while a second (newer) one is listed first. */
    assert_int_equal(run_err("rotated", vec_body, vec_len, VEC_SIG, NULL, 0), MH_VERIFY_OK);
}

static void test_wrong_key_and_url(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(run_err("wrongkey", vec_body, vec_len, VEC_SIG, err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "NOT_THE_KEY"));
    assert_null(strstr(err, VEC_SIG));
    /* One extra slash in the configured URL is another signed text. */
    assert_int_equal(run_err("otherurl", vec_body, vec_len, VEC_SIG, NULL, 0), MH_VERIFY_REJECT);
}

static void test_tampered(void **state)
{
    (void)state;
    char *body = strdup(vec_body);
    /* "bad_mailbox" -> "bad_mailbix": still a valid form, no longer the signed value. */
    char *p = strstr(body, "bad_mailbox");
    assert_non_null(p);
    p[9] = 'i';
    assert_int_equal(run_err("md", body, vec_len, VEC_SIG, NULL, 0), MH_VERIFY_REJECT);
    free(body);
    /* A parameter added, the body truncated. */
    body = malloc(vec_len + 16);
    sprintf(body, "%s&x=1", vec_body);
    assert_int_equal(run("md", body, VEC_SIG), MH_VERIFY_REJECT);
    free(body);
    assert_int_equal(run_err("md", vec_body, vec_len - 3, VEC_SIG, NULL, 0), MH_VERIFY_REJECT);
    /*
     * Signature: one character changed, truncated, not base64, hex of the right MAC. (The
     * last character before "=" carries two unused bits; changing only those decodes to
     * the same MAC, which is no forgery, so the changed character is one that counts.)
     */
    assert_int_equal(run_err("md", vec_body, vec_len, "OxwqZ/HlLVs7B810vwfz5yp7Pck=", NULL, 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(run_err("md", vec_body, vec_len, "OxwqZ/HlLVs7B810vwfz5yp7", NULL, 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(run_err("md", vec_body, vec_len, "!!not base64!!", NULL, 0),
                     MH_VERIFY_REJECT);
    assert_int_equal(run_err("md", vec_body, vec_len, "3b1c2a67f1e52d5b3b07cd74bf07f3e72a7b3db9",
                             NULL, 0),
                     MH_VERIFY_REJECT);
}

static void test_missing_header(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(run_err("md", vec_body, vec_len, NULL, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "missing"));
    assert_int_equal(run_err("md", vec_body, vec_len, "", NULL, 0), MH_VERIFY_REJECT);
}

/* Mandrill's unsigned setup post: exactly an empty batch, answered and not published. */
static void test_unsigned_empty_batch(void **state)
{
    (void)state;
    /* Answered, never published. */
    assert_int_equal(run("md", "mandrill_events=%5B%5D", NULL), MH_VERIFY_ACK);
    assert_int_equal(run("md", "mandrill_events=[]", NULL), MH_VERIFY_ACK);
    assert_int_equal(run("md", "mandrill_events=+%5B+%5D+", NULL), MH_VERIFY_ACK);
    assert_int_equal(run("md", "mandrill_events=%5B%5D&x=1", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("md", "mandrill_events=%5B%7B%7D%5D", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("md", "mandrill_events=", NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("md", "other=%5B%5D", NULL), MH_VERIFY_REJECT);
    /* A signature, when sent, is always checked. */
    assert_int_equal(run("md", "mandrill_events=%5B%5D", VEC_SIG), MH_VERIFY_REJECT);
    char sig[64];
    mac_of(VEC_KEY, VEC_URL "mandrill_events[]", sig);
    assert_int_equal(run("md", "mandrill_events=%5B%5D", sig), MH_VERIFY_OK);
}

/* Parameters are signed sorted by their decoded key; keys and values percent-decoded. */
static void test_sorted_params(void **state)
{
    (void)state;
    char sig[64];
    mac_of(VEC_KEY, VEC_URL "a1 2b/x", sig);
    assert_int_equal(run("md", "b=%2Fx&a=1+2", sig), MH_VERIFY_OK);
    assert_int_equal(run("md", "a=1+2&b=%2Fx", sig), MH_VERIFY_OK);
    assert_int_equal(run("md", "%61=1%202&b=/x", sig), MH_VERIFY_OK);
    /* Unsorted concatenation (as received) is not what Mandrill signs. */
    mac_of(VEC_KEY, VEC_URL "b/xa1 2", sig);
    assert_int_equal(run("md", "b=%2Fx&a=1+2", sig), MH_VERIFY_REJECT);
}

static void test_malformed_forms(void **state)
{
    (void)state;
    static const char nul_body[] = "mandrill_events=[]\0x";
    char err[512];
    assert_int_equal(run_err("md", nul_body, sizeof(nul_body) - 1, VEC_SIG, err, sizeof(err)),
                     MH_VERIFY_MALFORMED);
    assert_non_null(strstr(err, "NUL"));
    assert_int_equal(run("md", "mandrill_events=%5B%5D%00", VEC_SIG), MH_VERIFY_MALFORMED);
    assert_int_equal(run("md", "mandrill_events=%5B%5D&mandrill_events=%5B%5D", VEC_SIG),
                     MH_VERIFY_MALFORMED);
    assert_int_equal(run("md", "mandrill_events=%5B%5D&mandrill%5Fevents=x", VEC_SIG),
                     MH_VERIFY_MALFORMED);
    assert_int_equal(run("md", "mandrill_events", VEC_SIG), MH_VERIFY_MALFORMED);
    assert_int_equal(run("md", "=x", VEC_SIG), MH_VERIFY_MALFORMED);
    /* Parse refuses the same bodies with a reason (they go to the dead-letter topic). */
    const struct mh_provider *p = mh_provider_find("mandrill");
    struct mh_raw raw = {.source = "md", .provider = "mandrill", .tenant = "t",
                         .body = (const unsigned char *)"a=1&a=2", .body_len = 7};
    json_t *events = json_array();
    assert_int_equal(p->parse(&raw, events, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "mandrill: form parameter repeated"));
    json_decref(events);
}

static void test_sign_roundtrip(void **state)
{
    (void)state;
    struct mh_source *src = mh_config_source(cfg, "rotated");
    struct mh_headers h = {0};
    char url[512] = "http://127.0.0.1:8080/v1/webhooks/rotated", err[512];
    struct mh_sign_req sr = {.body = (const unsigned char *)vec_body, .body_len = vec_len,
                             .now_ms = 1767225600000LL, .headers = &h, .url = url,
                             .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_null(sr.new_body);
    assert_string_equal(url, "http://127.0.0.1:8080/v1/webhooks/rotated"); /* not signed */
    assert_string_equal(mh_headers_get(&h, "content-type"), "application/x-www-form-urlencoded");
    const char *sig = mh_headers_get(&h, "x-mandrill-signature");
    assert_non_null(sig);
    /* Signed with the newest key over the configured url, not the ingest URL. */
    char want[64];
    size_t n = 0;
    char *decoded = evhttp_uridecode(strstr(vec_body, "=") + 1, 1, &n);
    char *text = malloc(strlen(VEC_URL) + 16 + n);
    sprintf(text, "%smandrill_events%s", VEC_URL, decoded);
    mac_of("NEW_KEY_after_reset", text, want);
    assert_string_equal(sig, want);
    assert_int_equal(run_err("rotated", vec_body, vec_len, sig, NULL, 0), MH_VERIFY_OK);
    assert_int_equal(run_err("md", vec_body, vec_len, sig, NULL, 0), MH_VERIFY_REJECT);
    free(text);
    free(decoded);
    mh_headers_clear(&h);

    /* A body that is not a form cannot be signed. */
    sr.body = (const unsigned char *)"=oops";
    sr.body_len = 5;
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "form"));
    assert_int_equal(h.n, 0);
    mh_headers_clear(&h);
}

/* A JSON array of events (Mandrill's payload as its docs print it) is sent as the form
 * mandrill_events=<percent-encoded JSON>, signed, and that form verifies. */
static void test_sign_json_array(void **state)
{
    (void)state;
    static const char events[] = "[{\"event\":\"send\",\"_id\":\"a b&c=d\",\"ts\":1}]";
    struct mh_source *src = mh_config_source(cfg, "rotated");
    struct mh_headers h = {0};
    char url[512] = "http://127.0.0.1:8080/v1/webhooks/rotated", err[512];
    struct mh_sign_req sr = {.body = (const unsigned char *)events, .body_len = strlen(events),
                             .now_ms = 1767225600000LL, .headers = &h, .url = url,
                             .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_non_null(sr.new_body);
    char *form = strndup((const char *)sr.new_body, sr.new_body_len);
    assert_int_equal(strncmp(form, "mandrill_events=", 16), 0);
    assert_null(strpbrk(form + 16, " &=\"[")); /* every special character escaped */
    size_t n = 0;
    char *decoded = evhttp_uridecode(form + 16, 1, &n);
    assert_string_equal(decoded, events);
    const char *sig = mh_headers_get(&h, "x-mandrill-signature");
    assert_non_null(sig);
    assert_int_equal(run_err("rotated", form, strlen(form), sig, NULL, 0), MH_VERIFY_OK);
    free(decoded);
    free(form);
    free(sr.new_body);
    mh_headers_clear(&h);
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.x]\nprovider = mandrill\nsecret = k\n", "needs url"));
    assert_true(pt_config_fails_with(
        "[source.x]\nprovider = mandrill\nsecret = k\nurl = ftp://h/x\n", "url: not an http(s)"));
    assert_true(pt_config_fails_with(
        "[source.x]\nprovider = mandrill\nsecret = k\nurl = /v1/webhooks/x\n", "url"));
    assert_true(pt_config_fails_with("[source.x]\nprovider = mandrill\nurl = https://h/x\n",
                                     "secret"));
    assert_true(pt_config_fails_with(
        "[source.x]\nprovider = mandrill\nsecret = k\nurl = https://h/x\ntimestamp_tolerance_s = 5\n",
        "timestamp_tolerance_s"));
}

/* delivery from the last smtp_events[] entry; bounce_description and bgtools_code as sent. */
static void test_delivery_and_bounce_type(void **state)
{
    (void)state;
    /* '+' is a space in a form; the JSON here has none, nor '&', '=' or '%'. */
    json_t *ev = pt_parse_one(
        "mandrill",
        "mandrill_events=[{\"event\":\"deferral\",\"_id\":\"m1\",\"ts\":1700000000,\"msg\":{"
        "\"email\":\"a@example.com\",\"smtp_events\":[{\"type\":\"deferred\",\"diag\":\"451+busy\","
        "\"source_ip\":\"198.51.100.1\",\"destination_ip\":\"203.0.113.1\"},{\"type\":\"deferred\","
        "\"diag\":\"421+try+later\",\"source_ip\":\"198.51.100.2\",\"destination_ip\":"
        "\"203.0.113.2\"}]}}]");
    json_t *d = json_object_get(ev, "delivery");
    assert_string_equal(pt_str(ev, "delivery", "smtp_response"), "421 try later");
    assert_string_equal(pt_str(ev, "delivery", "remote_ip"), "203.0.113.2");
    assert_string_equal(pt_str(ev, "delivery", "sending_ip"), "198.51.100.2");
    assert_int_equal(json_integer_value(json_object_get(d, "attempt")), 2);
    json_decref(ev);

    ev = pt_parse_one("mandrill",
                      "mandrill_events=[{\"event\":\"hard_bounce\",\"_id\":\"m2\",\"ts\":1700000000,"
                      "\"msg\":{\"email\":\"a@example.com\",\"diag\":\"550+5.1.1+unknown\","
                      "\"bounce_description\":\"bad_mailbox\",\"bgtools_code\":10}}]");
    assert_string_equal(pt_str(ev, "bounce", "provider_type"), "bad_mailbox");
    assert_string_equal(pt_str(ev, "bounce", "provider_subtype"), "10");
    assert_null(json_object_get(ev, "delivery")); /* no smtp_events: nothing to say */
    json_decref(ev);

    /* an open carries msg.smtp_events too, but says nothing of a delivery */
    ev = pt_parse_one("mandrill", "mandrill_events=[{\"event\":\"open\",\"_id\":\"m3\",\"msg\":{"
                                  "\"email\":\"a@example.com\",\"smtp_events\":[{\"diag\":\"250+ok\"}]}}]");
    assert_null(json_object_get(ev, "delivery"));
    json_decref(ev);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_vector),
        cmocka_unit_test(test_rotation),
        cmocka_unit_test(test_wrong_key_and_url),
        cmocka_unit_test(test_tampered),
        cmocka_unit_test(test_missing_header),
        cmocka_unit_test(test_unsigned_empty_batch),
        cmocka_unit_test(test_sorted_params),
        cmocka_unit_test(test_malformed_forms),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_sign_json_array),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_delivery_and_bounce_type),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
