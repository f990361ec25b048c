/*
 * test_verify_mailjet.c — Mailjet signs nothing and sends no timestamp; a source
 * authenticates the caller by the HTTP Basic credentials of the webhook URL
 * (basic_user + a secret), a custom header holding a secret, or both. Right and wrong
 * credentials, rotation, missing and malformed headers, secrets kept out of errors, no
 * clock dependence, sign -> verify round trips, option validation, nothing forwarded;
 * then parse: every event type, blocked refined by its error, bounce classes, one object
 * or a grouped array, malformed records, and the derived event ids (stable over retries
 * and regrouping, distinct for distinct events).
 */
#include "provider_test.h"

#include <jansson.h>

#define BODY "{\"event\":\"sent\",\"time\":1433333949,\"MessageID\":1,\"email\":\"a@x.org\"}"

static const char *const ini =
    "[source.mj]\n"
    "provider = mailjet\n"
    "basic_user = mailjet-hook\n"
    "secret = new-Secret/2\n"
    "secret = old-Secret+1\n"
    "\n"
    "[source.hdr]\n"
    "provider = mailjet\n"
    "header = X-Mailjet-Hook\n"
    "secret = hdr-new\n"
    "secret = hdr-old\n"
    "\n"
    "[source.both]\n"
    "provider = mailjet\n"
    "basic_user = mj\n"
    "header = x-hook-secret\n"
    "secret = both-secret\n";

static struct mh_config *cfg;

static int setup(void **state)
{
    (void)state;
    cfg = pt_config(ini);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    mh_config_free(cfg);
    return 0;
}

/* Verdict for source at now_ms with optional "user:password" Basic credentials and a header. */
static enum mh_verdict run_at(const char *source, int64_t now_ms, const char *userpass,
                              const char *hname, const char *hvalue, char *err, size_t errlen)
{
    struct pt_request r;
    pt_request_init(&r, "/v1/webhooks/x", BODY, strlen(BODY), now_ms);
    if (userpass) {
        char b64[256], header[300];
        mh_b64_encode((const unsigned char *)userpass, strlen(userpass), b64);
        snprintf(header, sizeof(header), "Basic %s", b64);
        mh_headers_add(&r.headers, "Authorization", header);
    }
    if (hname) mh_headers_add(&r.headers, hname, hvalue);
    enum mh_verdict v = pt_verify(mh_config_source(cfg, source), &r);
    if (err) snprintf(err, errlen, "%s", r.err);
    pt_request_free(&r);
    return v;
}

static enum mh_verdict run(const char *source, const char *userpass, const char *hname,
                           const char *hvalue)
{
    return run_at(source, 1767225600000LL, userpass, hname, hvalue, NULL, 0);
}

static void test_basic(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(run("mj", "mailjet-hook:new-Secret/2", NULL, NULL), MH_VERIFY_OK);
    assert_int_equal(run("mj", "mailjet-hook:old-Secret+1", NULL, NULL), MH_VERIFY_OK);
    assert_int_equal(run_at("mj", 0, "mailjet-hook:wrong", NULL, NULL, err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "wrong"));
    assert_null(strstr(err, "Secret"));
    assert_int_equal(run_at("mj", 0, "someone:new-Secret/2", NULL, NULL, err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "someone"));
    assert_null(strstr(err, "Secret"));
    assert_int_equal(run("mj", "mailjet-hook:new-Secret/", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("mj", "mailjet-hook:new-Secret/2x", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("mj", "Mailjet-hook:new-Secret/2", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("mj", "mailjet-hook:", NULL, NULL), MH_VERIFY_REJECT);
}

static void test_basic_missing_or_malformed(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(run_at("mj", 0, NULL, NULL, NULL, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "missing"));
    /* The secret in another header, or as a bearer token, is no substitute. */
    assert_int_equal(run("mj", NULL, "X-Mailjet-Hook", "new-Secret/2"), MH_VERIFY_REJECT);
    static const char *const bad[] = {
        "Basic", "Basic ", "Basic !!!", "Bearer new-Secret/2", "new-Secret/2", NULL,
    };
    for (const char *const *h = bad; *h; h++) {
        assert_int_equal(run_at("mj", 0, NULL, "Authorization", *h, err, sizeof(err)),
                         MH_VERIFY_REJECT);
        assert_null(strstr(err, "Secret"));
    }
}

static void test_header(void **state)
{
    (void)state;
    char err[512];
    assert_int_equal(run("hdr", NULL, "X-Mailjet-Hook", "hdr-new"), MH_VERIFY_OK);
    assert_int_equal(run("hdr", NULL, "x-mailjet-hook", "hdr-old"), MH_VERIFY_OK);
    assert_int_equal(run_at("hdr", 0, NULL, "X-Mailjet-Hook", "hdr-ne", err, sizeof(err)),
                     MH_VERIFY_REJECT);
    assert_null(strstr(err, "hdr-"));
    assert_int_equal(run("hdr", NULL, "X-Mailjet-Hook", "hdr-new "), MH_VERIFY_REJECT);
    assert_int_equal(run("hdr", NULL, "X-Mailjet-Hook", ""), MH_VERIFY_REJECT);
    assert_int_equal(run_at("hdr", 0, NULL, NULL, NULL, err, sizeof(err)), MH_VERIFY_REJECT);
    assert_non_null(strstr(err, "missing"));
    assert_int_equal(run("hdr", "x:hdr-new", NULL, NULL), MH_VERIFY_REJECT);
}

static void test_both_required(void **state)
{
    (void)state;
    assert_int_equal(run("both", "mj:both-secret", "X-Hook-Secret", "both-secret"), MH_VERIFY_OK);
    assert_int_equal(run("both", "mj:both-secret", NULL, NULL), MH_VERIFY_REJECT);
    assert_int_equal(run("both", NULL, "X-Hook-Secret", "both-secret"), MH_VERIFY_REJECT);
    assert_int_equal(run("both", "mj:both-secret", "X-Hook-Secret", "nope"), MH_VERIFY_REJECT);
    assert_int_equal(run("both", "mj:nope", "X-Hook-Secret", "both-secret"), MH_VERIFY_REJECT);
}

/* No timestamp in the scheme: the verdict never depends on the clock (24 h of retries). */
static void test_no_clock(void **state)
{
    (void)state;
    static const int64_t nows[] = {0, 1767225600000LL, 1767225600000LL + 25 * 3600 * 1000LL,
                                   4102444800000LL};
    for (size_t i = 0; i < sizeof(nows) / sizeof(nows[0]); i++) {
        assert_int_equal(run_at("mj", nows[i], "mailjet-hook:new-Secret/2", NULL, NULL, NULL, 0),
                         MH_VERIFY_OK);
        assert_int_equal(run_at("mj", nows[i], "mailjet-hook:bad", NULL, NULL, NULL, 0),
                         MH_VERIFY_REJECT);
    }
}

static void sign_and_verify(const char *source, int want_basic, const char *want_header,
                            const char *want_value)
{
    struct pt_request r;
    char url[256] = "http://h/v1/webhooks/x", err[256];
    const struct mh_source *src = mh_config_source(cfg, source);
    pt_request_init(&r, "/v1/webhooks/x", BODY, strlen(BODY), 0);
    struct mh_sign_req sr = {.body = (const unsigned char *)BODY, .body_len = strlen(BODY),
                             .headers = &r.headers, .url = url, .url_cap = sizeof(url)};
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    assert_string_equal(url, "http://h/v1/webhooks/x");
    assert_null(sr.new_body);
    const char *auth = mh_headers_get(&r.headers, "authorization");
    assert_int_equal(auth != NULL, want_basic);
    if (auth) assert_int_equal(strncmp(auth, "Basic ", 6), 0);
    if (want_header) assert_string_equal(mh_headers_get(&r.headers, want_header), want_value);
    assert_int_equal(r.headers.n, (size_t)want_basic + (want_header != NULL));
    assert_int_equal(pt_verify(src, &r), MH_VERIFY_OK);
    pt_request_free(&r);
}

static void test_sign_roundtrip(void **state)
{
    (void)state;
    sign_and_verify("mj", 1, NULL, NULL);
    sign_and_verify("hdr", 0, "x-mailjet-hook", "hdr-new");
    sign_and_verify("both", 1, "x-hook-secret", "both-secret");

    /* Signed with the newest secret: exactly what Mailjet sends for user:secret@ in the URL. */
    struct pt_request r;
    char url[64] = "http://h/", err[256], want[128];
    pt_request_init(&r, "/", BODY, strlen(BODY), 0);
    struct mh_sign_req sr = {.headers = &r.headers, .url = url, .url_cap = sizeof(url)};
    const struct mh_source *src = mh_config_source(cfg, "mj");
    assert_int_equal(src->provider->sign(src, &sr, err, sizeof(err)), 0);
    snprintf(want, sizeof(want), "Basic ");
    mh_b64_encode((const unsigned char *)"mailjet-hook:new-Secret/2", 25, want + 6);
    assert_string_equal(mh_headers_get(&r.headers, "Authorization"), want);
    pt_request_free(&r);
}

static void test_options(void **state)
{
    (void)state;
    assert_true(pt_config_fails_with("[source.m]\nprovider = mailjet\nbasic_user = u\n",
                                     "needs a secret"));
    assert_true(pt_config_fails_with("[source.m]\nprovider = mailjet\nsecret = s\n",
                                     "basic_user, header"));
    assert_true(pt_config_fails_with(
        "[source.m]\nprovider = mailjet\nsecret = s\nbasic_user = a:b\n", "basic_user"));
    assert_true(pt_config_fails_with(
        "[source.m]\nprovider = mailjet\nsecret = s\nbasic_user =\n", "basic_user"));
    assert_true(pt_config_fails_with(
        "[source.m]\nprovider = mailjet\nsecret = s\nheader = X Bad\n", "header"));
    assert_true(pt_config_fails_with(
        "[source.m]\nprovider = mailjet\nsecret = s\nheader = Authorization\n", "header"));
    /* Mailjet cannot send a bearer token, and there is no timestamp to bound. */
    assert_true(pt_config_fails_with(
        "[source.m]\nprovider = mailjet\nsecret = s\nbearer = true\n", "unknown key \"bearer\""));
    assert_true(pt_config_fails_with(
        "[source.m]\nprovider = mailjet\nsecret = s\nheader = h\ntimestamp_tolerance_s = 5\n",
        "unknown key \"timestamp_tolerance_s\""));
}

/* No credential header rides on the raw record. */
static void test_forwarded(void **state)
{
    (void)state;
    const struct mh_source *src = mh_config_source(cfg, "both");
    assert_null(src->provider->forward_headers);
    assert_int_equal(src->n_forward, 0);
}

/* ---- parse ---- */

/* Parses body with the mailjet provider; rc must be want_rc. Events, or NULL on error. */
static json_t *parse_err(const char *body, int want_rc, char *err, size_t errlen)
{
    struct mh_headers h = {0};
    struct mh_raw raw = {.source = "mj", .provider = "mailjet", .tenant = "acme", .headers = &h,
                         .body = (const unsigned char *)body, .body_len = strlen(body),
                         .received_ms = 1767225600000LL, .topic = "mailhook.raw"};
    json_t *events = json_array();
    err[0] = '\0';
    int rc = mh_provider_find("mailjet")->parse(&raw, events, err, errlen);
    if (rc != want_rc) print_error("parse rc %d (%s) for %s\n", rc, err, body);
    assert_int_equal(rc, want_rc);
    if (rc == 0) return events;
    json_decref(events);
    return NULL;
}

static json_t *parse(const char *body)
{
    char err[256];
    return parse_err(body, 0, err, sizeof(err));
}

static const char *str_at(json_t *events, size_t i, const char *key)
{
    return json_string_value(json_object_get(json_array_get(events, i), key));
}

static const char *sub_str(json_t *events, size_t i, const char *sub, const char *key)
{
    return json_string_value(json_object_get(json_object_get(json_array_get(events, i), sub), key));
}

/* The one event of body: its type, and a sub-object's string member when sub is given. */
static void expect_one(const char *body, const char *type)
{
    json_t *e = parse(body);
    assert_int_equal(json_array_size(e), 1);
    assert_string_equal(str_at(e, 0, "type"), type);
    assert_string_equal(str_at(e, 0, "recipient"), "a@x.org");
    assert_string_equal(str_at(e, 0, "message_id"), "7");
    assert_string_equal(str_at(e, 0, "occurred_at"), "2015-06-03T12:19:09.000Z");
    assert_int_equal(strlen(str_at(e, 0, "event_id")), 64);
    json_decref(e);
}

#define EV(name, more) \
    "{\"event\":\"" name "\",\"time\":1433333949,\"MessageID\":7,\"email\":\"A@x.org\"" more "}"

static void test_parse_types(void **state)
{
    (void)state;
    expect_one(EV("sent", ",\"smtp_reply\":\"sent (250 OK)\""), "email.delivered");
    expect_one(EV("open", ",\"ip\":\"192.0.2.1\",\"agent\":\"UA\""), "email.opened");
    expect_one(EV("click", ",\"url\":\"https://x.org/\""), "email.clicked");
    expect_one(EV("bounce", ",\"hard_bounce\":true"), "email.bounced");
    expect_one(EV("blocked", ",\"error_related_to\":\"mailjet\",\"error\":\"preblocked\""),
               "email.suppressed");
    expect_one(EV("spam", ",\"source\":\"JMRPP\""), "email.complained");
    expect_one(EV("unsub", ",\"mj_list_id\":3"), "email.unsubscribed");
    expect_one(EV("future_thing", ""), "other");

    /* Sub-objects and metadata. */
    json_t *e = parse(EV("click", ",\"url\":\"https://x.org/\",\"ip\":\"192.0.2.1\","
                                  "\"agent\":\"UA\",\"geo\":\"FR\""));
    assert_string_equal(sub_str(e, 0, "click", "url"), "https://x.org/");
    assert_string_equal(sub_str(e, 0, "click", "ip"), "192.0.2.1");
    assert_string_equal(sub_str(e, 0, "click", "user_agent"), "UA");
    assert_string_equal(sub_str(e, 0, "metadata", "geo"), "FR");
    assert_string_equal(str_at(e, 0, "provider_event"), "click");
    assert_null(json_object_get(json_object_get(json_array_get(e, 0), "click"), "machine"));
    json_decref(e);

    /* delivery.smtp_response <- smtp_reply; Mailjet's bounce classification as sent. */
    e = parse(EV("sent", ",\"smtp_reply\":\"sent (250 2.0.0 OK)\""));
    assert_string_equal(sub_str(e, 0, "delivery", "smtp_response"), "sent (250 2.0.0 OK)");
    assert_null(sub_str(e, 0, "metadata", "smtp_reply"));
    json_decref(e);
    e = parse(EV("bounce", ",\"hard_bounce\":true,\"error_related_to\":\"recipient\","
                           "\"error\":\"user unknown\""));
    assert_string_equal(sub_str(e, 0, "bounce", "provider_type"), "recipient");
    assert_string_equal(sub_str(e, 0, "bounce", "provider_subtype"), "user unknown");
    assert_null(json_object_get(json_array_get(e, 0), "metadata"));
    json_decref(e);
    /* blocked has no bounce: Mailjet's reasons stay metadata */
    e = parse(EV("blocked", ",\"error_related_to\":\"recipient\",\"error\":\"user unknown\""));
    assert_null(json_object_get(json_array_get(e, 0), "bounce"));
    assert_string_equal(sub_str(e, 0, "metadata", "error_related_to"), "recipient");
    json_decref(e);
    e = parse(EV("open", ",\"ip\":\"192.0.2.1\",\"agent\":\"UA\""));
    assert_string_equal(sub_str(e, 0, "open", "ip"), "192.0.2.1");
    assert_string_equal(sub_str(e, 0, "open", "user_agent"), "UA");
    json_decref(e);
    /* An open without ip or agent has no empty open object. */
    e = parse(EV("open", ""));
    assert_null(json_object_get(json_array_get(e, 0), "open"));
    json_decref(e);
    /* A spam report names its feedback loop, not an ARF type: metadata, no complaint object. */
    e = parse(EV("spam", ",\"source\":\"JMRPP\""));
    assert_null(json_object_get(json_array_get(e, 0), "complaint"));
    assert_string_equal(sub_str(e, 0, "metadata", "source"), "JMRPP");
    json_decref(e);
}

/* blocked: the recipient's standing -> suppressed; any other refusal -> failed. */
static void test_blocked(void **state)
{
    (void)state;
    static const struct {
        const char *related, *error, *type;
    } cases[] = {
        {"mailjet", "preblocked", "email.suppressed"},
        {"mailjet", "spam preblocked", "email.suppressed"},
        {"recipient", "user unknown", "email.suppressed"},
        {"recipient", "blacklisted", "email.suppressed"},
        {"recipient", "spam reporter", "email.suppressed"},
        {"mailjet", "duplicate in campaign", "email.failed"},
        {"content", "bad or empty template", "email.failed"},
        {"content", "error in template language", "email.failed"},
        {"spam", "sender blocked", "email.failed"},
        {"domain", "typofix", "email.failed"},
        {"system", "system issue", "email.failed"},
    };
    char body[512];
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(body, sizeof(body), EV("blocked", ",\"error_related_to\":\"%s\",\"error\":\"%s\""),
                 cases[i].related, cases[i].error);
        json_t *e = parse(body);
        assert_string_equal(str_at(e, 0, "type"), cases[i].type);
        assert_string_equal(sub_str(e, 0, "metadata", "error"), cases[i].error);
        assert_null(json_object_get(json_array_get(e, 0), "bounce"));
        json_decref(e);
    }
    /* No reason at all: refused before sending. */
    json_t *e = parse(EV("blocked", ""));
    assert_string_equal(str_at(e, 0, "type"), "email.failed");
    json_decref(e);
}

/* hard_bounce decides the class; comment (else error) is the diagnostic. */
static void test_bounce(void **state)
{
    (void)state;
    json_t *e = parse(EV("bounce", ",\"hard_bounce\":true,\"error\":\"user unknown\","
                                   "\"comment\":\"550 5.1.1 no such user\""));
    assert_string_equal(sub_str(e, 0, "bounce", "class"), "hard");
    assert_string_equal(sub_str(e, 0, "bounce", "category"), "invalid_recipient");
    assert_string_equal(sub_str(e, 0, "bounce", "enhanced_code"), "5.1.1");
    assert_string_equal(sub_str(e, 0, "bounce", "diagnostic"), "550 5.1.1 no such user");
    assert_null(sub_str(e, 0, "metadata", "comment"));
    json_decref(e);
    e = parse(EV("bounce", ",\"hard_bounce\":false,\"error\":\"quota exceeded\""));
    assert_string_equal(sub_str(e, 0, "bounce", "class"), "soft");
    assert_string_equal(sub_str(e, 0, "bounce", "category"), "mailbox_full");
    assert_string_equal(sub_str(e, 0, "bounce", "diagnostic"), "quota exceeded");
    assert_string_equal(str_at(e, 0, "type"), "email.bounced");
    json_decref(e);
    /* The flag as a string, as some relays re-encode it. */
    e = parse(EV("bounce", ",\"hard_bounce\":\"true\""));
    assert_string_equal(sub_str(e, 0, "bounce", "class"), "hard");
    json_decref(e);
    /* Without the flag the codes decide; a generic error only fills an unclassified gap. */
    e = parse(EV("bounce", ",\"error\":\"policy issue\",\"comment\":\"421 4.7.0 try later\""));
    assert_string_equal(sub_str(e, 0, "bounce", "class"), "soft");
    json_decref(e);
    e = parse(EV("bounce", ",\"hard_bounce\":true,\"error\":\"connection issue\""));
    assert_string_equal(sub_str(e, 0, "bounce", "category"), "connection_error");
    json_decref(e);
}

/* MessageID as a number or a string; the deprecated mj_message_id; 0 is no id. */
static void test_message_id(void **state)
{
    (void)state;
    json_t *e = parse("[{\"event\":\"sent\",\"MessageID\":288230384541966300,\"email\":\"a@x.org\"},"
                      "{\"event\":\"sent\",\"MessageID\":\"288230384541966301\",\"email\":\"a@x.org\"},"
                      "{\"event\":\"sent\",\"mj_message_id\":\"18858825588804172\",\"email\":\"a@x.org\"},"
                      "{\"event\":\"sent\",\"MessageID\":0,\"email\":\"a@x.org\"}]");
    assert_int_equal(json_array_size(e), 4);
    assert_string_equal(str_at(e, 0, "message_id"), "288230384541966300");
    assert_string_equal(str_at(e, 1, "message_id"), "288230384541966301");
    assert_string_equal(str_at(e, 2, "message_id"), "18858825588804172");
    assert_null(str_at(e, 3, "message_id"));
    assert_null(str_at(e, 3, "occurred_at"));
    json_decref(e);
}

/* Payload: a JSON object is the metadata (its keys win); other text is metadata.Payload. */
static void test_payload(void **state)
{
    (void)state;
    json_t *e = parse(EV("sent", ",\"Payload\":\"{\\\"CustomID\\\":\\\"mine\\\",\\\"k\\\":1}\","
                                 "\"CustomID\":\"theirs\",\"customcampaign\":\"promo\""));
    assert_string_equal(sub_str(e, 0, "metadata", "CustomID"), "mine");
    assert_int_equal(json_integer_value(json_object_get(
                         json_object_get(json_array_get(e, 0), "metadata"), "k")),
                     1);
    json_t *tags = json_object_get(json_array_get(e, 0), "tags");
    assert_int_equal(json_array_size(tags), 1);
    assert_string_equal(json_string_value(json_array_get(tags, 0)), "promo");
    json_decref(e);
    e = parse(EV("sent", ",\"Payload\":\"plain text\""));
    assert_string_equal(sub_str(e, 0, "metadata", "Payload"), "plain text");
    json_decref(e);
}

static void test_malformed(void **state)
{
    (void)state;
    char err[256];
    assert_null(parse_err("{\"event\":", -1, err, sizeof(err)));
    assert_non_null(strstr(err, "mailjet: invalid JSON"));
    assert_null(parse_err("{\"time\":1,\"email\":\"a@x.org\"}", -1, err, sizeof(err)));
    assert_non_null(strstr(err, "without \"event\""));
    assert_null(parse_err("{\"event\":\"\",\"email\":\"a@x.org\"}", -1, err, sizeof(err)));
    assert_null(parse_err("{\"event\":7,\"email\":\"a@x.org\"}", -1, err, sizeof(err)));
    assert_null(parse_err("{\"event\":\"bounce\",\"time\":1}", -1, err, sizeof(err)));
    assert_non_null(strstr(err, "bounce event without \"email\""));
    assert_null(parse_err("[" EV("sent", "") ",3]", -1, err, sizeof(err)));
    assert_non_null(strstr(err, "not a JSON object"));
    assert_null(parse_err("\"sent\"", -1, err, sizeof(err)));
    /* Duplicate keys make the event ambiguous. */
    assert_null(parse_err("{\"event\":\"sent\",\"event\":\"open\",\"email\":\"a@x.org\"}", -1,
                          err, sizeof(err)));
    /* An empty group is no event and no error. */
    json_t *e = parse("[]");
    assert_int_equal(json_array_size(e), 0);
    json_decref(e);
}

static const char *id_of(json_t *events, size_t i)
{
    return str_at(events, i, "event_id");
}

/*
 * Derived ids: the same event gets the same id however it arrives (alone or grouped,
 * keys reordered, recipient case); another time, link, device, list, recipient, type or
 * message gets another.
 */
static void test_event_ids(void **state)
{
    (void)state;
    json_t *one = parse(EV("click", ",\"url\":\"https://a\",\"ip\":\"192.0.2.1\""));
    json_t *again = parse("{\"ip\":\"192.0.2.1\",\"url\":\"https://a\",\"email\":\"a@X.org\","
                          "\"MessageID\":7,\"time\":1433333949,\"event\":\"click\"}");
    json_t *grouped = parse("[" EV("sent", "") "," EV("click", ",\"url\":\"https://a\",\"ip\":"
                                                               "\"192.0.2.1\"") "]");
    assert_string_equal(id_of(one, 0), id_of(again, 0));
    assert_string_equal(id_of(one, 0), id_of(grouped, 1));
    assert_string_not_equal(id_of(grouped, 0), id_of(grouped, 1));
    json_decref(one);
    json_decref(again);
    json_decref(grouped);

    json_t *e = parse("["
                      EV("click", ",\"url\":\"https://a\"") ","
                      EV("click", ",\"url\":\"https://b\"") ","
                      "{\"event\":\"click\",\"time\":1433333950,\"MessageID\":7,"
                      "\"email\":\"a@x.org\",\"url\":\"https://a\"},"
                      "{\"event\":\"click\",\"time\":1433333949,\"MessageID\":8,"
                      "\"email\":\"a@x.org\",\"url\":\"https://a\"},"
                      "{\"event\":\"click\",\"time\":1433333949,\"MessageID\":7,"
                      "\"email\":\"b@x.org\",\"url\":\"https://a\"},"
                      EV("open", ",\"ip\":\"192.0.2.1\"") ","
                      EV("open", ",\"ip\":\"192.0.2.2\"") ","
                      EV("open", ",\"ip\":\"192.0.2.1\",\"agent\":\"other\"") ","
                      EV("unsub", ",\"mj_list_id\":1") ","
                      EV("unsub", ",\"mj_list_id\":2") "]");
    assert_int_equal(json_array_size(e), 10);
    for (size_t i = 0; i < 10; i++)
        for (size_t j = i + 1; j < 10; j++) assert_string_not_equal(id_of(e, i), id_of(e, j));
    json_decref(e);

    /* Another tenant, another id (event.h hashes it in). */
    struct mh_headers h = {0};
    const char *body = EV("sent", "");
    struct mh_raw raw = {.source = "mj", .provider = "mailjet", .tenant = "other", .headers = &h,
                         .body = (const unsigned char *)body, .body_len = strlen(body),
                         .received_ms = 1767225600000LL, .topic = "mailhook.raw"};
    json_t *t1 = json_array(), *t2 = parse(body);
    char err[256];
    assert_int_equal(mh_provider_find("mailjet")->parse(&raw, t1, err, sizeof(err)), 0);
    assert_string_not_equal(id_of(t1, 0), id_of(t2, 0));
    json_decref(t1);
    json_decref(t2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_basic),
        cmocka_unit_test(test_basic_missing_or_malformed),
        cmocka_unit_test(test_header),
        cmocka_unit_test(test_both_required),
        cmocka_unit_test(test_no_clock),
        cmocka_unit_test(test_sign_roundtrip),
        cmocka_unit_test(test_options),
        cmocka_unit_test(test_forwarded),
        cmocka_unit_test(test_parse_types),
        cmocka_unit_test(test_blocked),
        cmocka_unit_test(test_bounce),
        cmocka_unit_test(test_message_id),
        cmocka_unit_test(test_payload),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_event_ids),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
