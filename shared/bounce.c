/*
 * bounce.c — bounce classification (see bounce.h).
 *
 * Responsible for turning what a provider tells us about a failed delivery (an
 * enhanced status code, an SMTP reply code, diagnostic text) into bounce.class and
 * bounce.category. Not responsible for deciding what to suppress: that is the worker's
 * rule set, which reads class and category.
 *
 * Three tables, applied in order (following the RFC 3463 notes beside the design page):
 *  1. the enhanced status code: its class (4 or 5) decides permanence, its
 *     subject.detail the category; an unknown detail falls back to the subject's X.N.0
 *     row. Rows marked `refine` are generic (X.0.0, X.7.1, Microsoft's X.7.5xx...) or
 *     known to be reused by large receivers for something else (Microsoft sends 5.1.10
 *     and 5.4.1 for an unknown recipient), so the text may name a better category.
 *  2. the basic SMTP reply code when there is no enhanced code; these are all coarse,
 *     so the text may always refine them.
 *  3. text heuristics: first matching rule wins, so the specific phrases come before
 *     the general ones ("host not found" before "not found", "greylisted" before
 *     "recipient address rejected").
 * The class follows the evidence in a fixed order (bounce.h, docs/bounces.md): the
 * codes, then the provider's verdict (its class or its category), then the event's name.
 * A transient (class 4) result is never refined into a category that only makes sense
 * for a permanent failure (invalid_recipient, inactive_mailbox); a domain-not-found
 * text on a transient failure means a DNS failure, not an invalid domain.
 */
#include "mailhook/bounce.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailhook/event.h"
#include "mailhook/log.h"

static const char *const categories[] = {
    "invalid_recipient", "inactive_mailbox",  "mailbox_full",     "invalid_domain",
    "dns_failure",       "routing_error",     "spam_block",       "spam_content",
    "policy_rejection",  "connection_error",  "protocol_error",   "transient_failure",
    "unclassified",      NULL,
};

int mh_bounce_category_known(const char *category)
{
    if (!category) return 0;
    for (const char *const *c = categories; *c; c++)
        if (!strcmp(*c, category)) return 1;
    return 0;
}

/* ---- 1. enhanced status codes ---- */

struct code_row {
    int subject, detail;
    const char *category;  /* for class 5 */
    const char *category4; /* for class 4, when it differs */
    int refine;            /* the text may name a better category */
};

static const struct code_row enhanced_rows[] = {
    {0, 0, "unclassified", "transient_failure", 1},
    {1, 0, "invalid_recipient", NULL, 1},
    {1, 1, "invalid_recipient", NULL, 0},
    {1, 2, "invalid_domain", NULL, 0},
    {1, 3, "invalid_recipient", NULL, 0},
    {1, 4, "invalid_recipient", NULL, 0},
    {1, 6, "inactive_mailbox", NULL, 0},
    {1, 7, "policy_rejection", NULL, 0},
    {1, 8, "policy_rejection", NULL, 0},
    {1, 10, "invalid_domain", NULL, 1},
    {2, 0, "inactive_mailbox", "transient_failure", 1},
    {2, 1, "inactive_mailbox", NULL, 0},
    {2, 2, "mailbox_full", NULL, 0},
    {2, 3, "protocol_error", NULL, 0},
    {2, 4, "routing_error", NULL, 0},
    {3, 0, "unclassified", "transient_failure", 1},
    {3, 1, "transient_failure", NULL, 0},
    {3, 2, "connection_error", NULL, 0},
    {3, 3, "protocol_error", NULL, 0},
    {3, 4, "protocol_error", NULL, 0},
    {3, 5, "routing_error", NULL, 0},
    {4, 0, "routing_error", NULL, 0},
    {4, 1, "connection_error", NULL, 1},
    {4, 2, "connection_error", NULL, 0},
    {4, 3, "dns_failure", NULL, 0},
    {4, 4, "invalid_domain", "dns_failure", 0},
    {4, 5, "transient_failure", NULL, 0},
    {4, 6, "routing_error", NULL, 0},
    {4, 7, "transient_failure", NULL, 0},
    {5, 0, "protocol_error", NULL, 0},
    {6, 0, "protocol_error", NULL, 0},
    {7, 0, "policy_rejection", NULL, 1},
    {7, 1, "policy_rejection", NULL, 1},
    {7, 2, "policy_rejection", NULL, 0},
    {7, 3, "protocol_error", NULL, 0},
    {7, 4, "protocol_error", NULL, 0},
    {7, 5, "protocol_error", NULL, 0},
    {7, 6, "protocol_error", NULL, 0},
    {7, 7, "protocol_error", NULL, 0},
    {7, 8, "policy_rejection", NULL, 0},
    {7, 9, "policy_rejection", NULL, 0},
    {7, 10, "policy_rejection", NULL, 0},
    {7, 11, "policy_rejection", NULL, 0},
    {7, 12, "policy_rejection", NULL, 0},
    {7, 13, "policy_rejection", NULL, 1},
    {7, 14, "policy_rejection", NULL, 0},
    {7, 15, "policy_rejection", NULL, 0},
    {7, 16, "policy_rejection", NULL, 0},
    {7, 17, "inactive_mailbox", NULL, 0},
    {7, 18, "invalid_domain", NULL, 0},
    {7, 19, "transient_failure", NULL, 0},
    {7, 20, "policy_rejection", NULL, 0},
    {7, 21, "policy_rejection", NULL, 0},
    {7, 22, "policy_rejection", NULL, 0},
    {7, 23, "policy_rejection", NULL, 0},
    {7, 24, "policy_rejection", NULL, 0},
    {7, 25, "policy_rejection", NULL, 0},
    {7, 26, "policy_rejection", NULL, 0},
    {7, 27, "policy_rejection", NULL, 0},
    {7, 28, "spam_block", NULL, 0},
    {7, 29, "policy_rejection", NULL, 0},
    {7, 30, "policy_rejection", NULL, 0},
    {-1, -1, NULL, NULL, 0},
};

static const struct code_row unknown_subject = {-1, -1, "unclassified", "transient_failure", 1};

static const struct code_row *enhanced_row(int subject, int detail)
{
    const struct code_row *fallback = NULL;
    for (const struct code_row *r = enhanced_rows; r->category; r++) {
        if (r->subject != subject) continue;
        if (r->detail == detail) return r;
        if (r->detail == 0) fallback = r;
    }
    return fallback ? fallback : &unknown_subject;
}

/* ---- 2. basic SMTP reply codes (RFC 5321) ---- */

static const char *by_smtp(int code)
{
    switch (code) {
    case 421: return "connection_error";
    case 550: return "policy_rejection";
    case 551: return "invalid_recipient";
    case 552: return "mailbox_full";
    case 553: return "invalid_recipient";
    case 554: return "policy_rejection";
    default: return code >= 500 ? "unclassified" : "transient_failure";
    }
}

/* ---- 3. text heuristics ---- */

#define WB_START 1 /* the needle must start a word */
#define WB_END 2   /* the needle must end a word */

struct text_rule {
    const char *needle; /* lower case */
    const char *category;
    int bounds;
};

static const struct text_rule text_rules[] = {
    /* Temporary conditions whose wording would otherwise match a harder rule. */
    {"greylist", "transient_failure", 0},
    {"graylist", "transient_failure", 0},
    {"retry timeout exceeded", "transient_failure", 0},
    /* The domain, before the "not found" / "does not exist" of mailboxes. */
    {"host or domain name not found", "invalid_domain", 0},
    {"domain not found", "invalid_domain", 0},
    {"host not found", "invalid_domain", 0},
    {"domain does not exist", "invalid_domain", 0},
    {"domain doesn't exist", "invalid_domain", 0},
    {"nonexistent domain", "invalid_domain", 0},
    {"non-existent domain", "invalid_domain", 0},
    {"non-existent host", "invalid_domain", 0},
    {"no such domain", "invalid_domain", 0},
    {"nxdomain", "invalid_domain", 0},
    {"no mx", "invalid_domain", WB_START},
    {"null mx", "invalid_domain", WB_START},
    {"name or service not known", "invalid_domain", 0},
    /* The mailbox. */
    {"user unknown", "invalid_recipient", 0},
    {"unknown user", "invalid_recipient", 0},
    {"no such user", "invalid_recipient", 0},
    {"no such recipient", "invalid_recipient", 0},
    {"no such mailbox", "invalid_recipient", 0},
    {"unknown recipient", "invalid_recipient", 0},
    {"invalid recipient", "invalid_recipient", 0},
    {"invalid mailbox", "invalid_recipient", 0},
    {"recipient not found", "invalid_recipient", 0},
    {"recipientnotfound", "invalid_recipient", 0},
    {"recipnotfound", "invalid_recipient", 0},
    {"user not found", "invalid_recipient", 0},
    {"mailbox not found", "invalid_recipient", 0},
    {"mailbox unavailable", "invalid_recipient", 0},
    {"no mailbox", "invalid_recipient", 0},
    {"does not exist", "invalid_recipient", 0},
    {"doesn't exist", "invalid_recipient", 0},
    {"doesn't have a", "invalid_recipient", 0},
    {"recipient address rejected", "invalid_recipient", 0},
    {"address rejected", "invalid_recipient", 0},
    {"not found", "invalid_recipient", 0},
    /* Storage and size. */
    {"over quota", "mailbox_full", 0},
    {"quota", "mailbox_full", 0},
    {"mailbox full", "mailbox_full", 0},
    {"mailbox is full", "mailbox_full", 0},
    {"mailbox size", "mailbox_full", 0},
    {"insufficient storage", "mailbox_full", 0},
    {"storage allocation", "mailbox_full", 0},
    {"message size", "protocol_error", 0},
    {"size exceeds", "protocol_error", 0},
    {"too large", "protocol_error", 0},
    {"too big", "protocol_error", 0},
    /* The connection (before "suspended": Postfix says "delivery temporarily suspended"). */
    {"timed out", "connection_error", 0},
    {"timeout", "connection_error", 0},
    {"connection refused", "connection_error", 0},
    {"connection reset", "connection_error", 0},
    {"could not connect", "connection_error", 0},
    {"unable to connect", "connection_error", 0},
    {"no route to host", "connection_error", 0},
    {"network is unreachable", "connection_error", 0},
    {"tls", "connection_error", WB_START | WB_END},
    /* An account that exists but takes no mail. */
    {"disabled", "inactive_mailbox", 0},
    {"inactive", "inactive_mailbox", 0},
    {"deactivated", "inactive_mailbox", 0},
    {"suspended", "inactive_mailbox", 0},
    {"account closed", "inactive_mailbox", 0},
    {"account has been closed", "inactive_mailbox", 0},
    {"no longer", "inactive_mailbox", 0},
    /* Reputation: lists and the sending IP. */
    {"spamhaus", "spam_block", 0},
    {"spamcop", "spam_block", 0},
    {"barracuda", "spam_block", 0},
    {"dnsbl", "spam_block", 0},
    {"rbl", "spam_block", WB_START | WB_END},
    {"blacklist", "spam_block", 0},
    {"blocklist", "spam_block", 0},
    {"block list", "spam_block", 0},
    {"listed", "spam_block", WB_START},
    {"reputation", "spam_block", 0},
    {"banned", "spam_block", WB_START},
    {"unusual rate", "spam_block", 0},
    {"not accepted from this ip", "spam_block", 0},
    /* The message itself. */
    {"unsolicited", "spam_content", 0},
    {"phishing", "spam_content", 0},
    {"virus", "spam_content", 0},
    {"malware", "spam_content", 0},
    {"content", "spam_content", 0},
    /* Weaker reputation signals, then the bare word "spam". */
    {"block", "spam_block", WB_START},
    {"rate limit", "spam_block", 0},
    {"complaints", "spam_block", 0},
    {"spam", "spam_content", 0},
    /* Sender authentication and policy. */
    {"dmarc", "policy_rejection", 0},
    {"spf", "policy_rejection", WB_START | WB_END},
    {"dkim", "policy_rejection", WB_START | WB_END},
    {"authenticat", "policy_rejection", 0},
    {"policy", "policy_rejection", 0},
    {"relay", "policy_rejection", WB_START},
    {"not authorized", "policy_rejection", 0},
    {"access denied", "policy_rejection", 0},
    /* Routing. */
    {"loops back", "routing_error", 0},
    {"mail loop", "routing_error", 0},
    {"routing loop", "routing_error", 0},
    {"unrouteable", "routing_error", 0},
    {"unroutable", "routing_error", 0},
    /* Plain temporary failures. */
    {"try again later", "transient_failure", 0},
    {"temporarily deferred", "transient_failure", 0},
    {"deferred", "transient_failure", 0},
    {"server busy", "transient_failure", 0},
    {"expired", "transient_failure", 0},
    {NULL, NULL, 0},
};

static int at_bounds(const char *low, const char *hit, size_t len, int bounds)
{
    if ((bounds & WB_START) && hit > low && isalnum((unsigned char)hit[-1])) return 0;
    if ((bounds & WB_END) && isalnum((unsigned char)hit[len])) return 0;
    return 1;
}

static int text_has(const char *low, const struct text_rule *r)
{
    size_t len = strlen(r->needle);
    for (const char *hit = strstr(low, r->needle); hit; hit = strstr(hit + 1, r->needle))
        if (at_bounds(low, hit, len, r->bounds)) return 1;
    return 0;
}

static const char *by_text(const char *text)
{
    if (!text || !*text) return NULL;
    char *low = mh_strdup(text);
    mh_lower(low);
    const char *cat = NULL;
    for (const struct text_rule *r = text_rules; r->needle && !cat; r++)
        if (text_has(low, r)) cat = r->category;
    free(low);
    return cat;
}

/* The text's category as it applies to a failure of class cls ('4', '5' or 0). */
static const char *text_for_class(const char *text_cat, char cls)
{
    if (!text_cat || cls != '4') return text_cat;
    if (!strcmp(text_cat, "invalid_domain")) return "dns_failure";
    if (!strcmp(text_cat, "invalid_recipient") || !strcmp(text_cat, "inactive_mailbox"))
        return NULL;
    return text_cat;
}

/* ---- code finding ---- */

static size_t count_digits(const char *p, size_t max)
{
    size_t n = 0;
    while (n <= max && isdigit((unsigned char)p[n])) n++;
    return n;
}

/* Length of an enhanced code starting at p, or 0 when p does not start one. */
static size_t enhanced_at(const char *text, const char *p)
{
    if ((*p != '2' && *p != '4' && *p != '5') || p[1] != '.') return 0;
    if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '.')) return 0;
    if (p[2] < '0' || p[2] > '7' || p[3] != '.') return 0;
    size_t nd = count_digits(p + 4, 3);
    if (nd < 1 || nd > 3) return 0;
    const char *end = p + 4 + nd;
    if (isalnum((unsigned char)*end)) return 0;
    if (*end == '.' && isdigit((unsigned char)end[1])) return 0; /* IP address, version */
    return (size_t)(end - p);
}

int mh_bounce_find_enhanced(const char *text, char *out, size_t outlen)
{
    const char *success = NULL;
    size_t success_len = 0;
    if (!text) return -1;
    for (const char *p = text; *p; p++) {
        size_t len = enhanced_at(text, p);
        if (!len) continue;
        if (*p == '2') {
            if (!success) success = p, success_len = len;
            continue;
        }
        if (len + 1 > outlen) return -1;
        memcpy(out, p, len);
        out[len] = '\0';
        return 0;
    }
    if (!success || success_len + 1 > outlen) return -1;
    memcpy(out, success, success_len);
    out[success_len] = '\0';
    return 0;
}

/* A reply code at p (after blanks and quotes), or 0. */
static int smtp_at(const char *p)
{
    while (*p == ' ' || *p == '\t' || *p == '"' || *p == '\'') p++;
    if (p[0] < '2' || p[0] > '5' || !isdigit((unsigned char)p[1]) || !isdigit((unsigned char)p[2]))
        return 0;
    char next = p[3];
    if (isalnum((unsigned char)next) || next == '.' || next == ':') return 0;
    return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
}

static const char *const smtp_anchors[] = {
    "smtp;", "said:", "]:", ">:", "<<<", "reason:", "error:", "data:", "returned '", "#", NULL,
};

int mh_bounce_find_smtp(const char *text)
{
    if (!text) return 0;
    const char *p = text;
    while (*p == ' ' || *p == '\t') p++;
    int code = smtp_at(p);
    if (code) return code;
    for (; *p; p++) {
        for (const char *const *a = smtp_anchors; *a; a++) {
            size_t len = strlen(*a);
            if (strncasecmp(p, *a, len)) continue;
            if ((code = smtp_at(p + len))) return code;
        }
    }
    return 0;
}

/* ---- putting it together ---- */

/* The enhanced code to use: the provider's when it is one, else one from the text. */
static void settle_enhanced(json_t *bounce, const char *diag, char *enhanced, size_t len)
{
    const char *given = mh_json_str(bounce, "enhanced_code");
    enhanced[0] = '\0';
    if (given && mh_bounce_find_enhanced(given, enhanced, len) == 0) {
        if (strcmp(given, enhanced)) mh_event_set_str(bounce, "enhanced_code", enhanced);
        return;
    }
    if (json_object_get(bounce, "enhanced_code")) json_object_del(bounce, "enhanced_code");
    if (mh_bounce_find_enhanced(diag, enhanced, len) == 0)
        mh_event_set_str(bounce, "enhanced_code", enhanced);
}

static int settle_smtp(json_t *bounce, const char *diag)
{
    json_int_t smtp = 0;
    if (mh_json_int(bounce, "smtp_code", &smtp) == 0 && smtp >= 200 && smtp <= 599) {
        if (!json_is_integer(json_object_get(bounce, "smtp_code")))
            mh_event_set_int(bounce, "smtp_code", smtp);
        return (int)smtp;
    }
    if (json_object_get(bounce, "smtp_code")) json_object_del(bounce, "smtp_code");
    int code = mh_bounce_find_smtp(diag);
    if (code) mh_event_set_int(bounce, "smtp_code", code);
    return code;
}

/* '4' or '5' for a failure code, else 0. A class-2 enhanced code says nothing. */
static char failure_class(const char *enhanced, int smtp)
{
    if (enhanced[0] == '4' || enhanced[0] == '5') return enhanced[0];
    if (smtp >= 400 && smtp < 600) return (char)('0' + smtp / 100);
    return 0;
}

static const char *category_for(const char *enhanced, int smtp, char cls, const char *diag)
{
    const char *text_cat = text_for_class(by_text(diag), cls);
    const char *cat = NULL;
    int refine = 1;
    if (enhanced[0] == '4' || enhanced[0] == '5') {
        int subject = enhanced[2] - '0';
        int detail = atoi(enhanced + 4);
        const struct code_row *r = enhanced_row(subject, detail);
        cat = (cls == '4' && r->category4) ? r->category4 : r->category;
        refine = r->refine;
    } else if (smtp >= 400 && smtp < 600) {
        cat = by_smtp(smtp);
    }
    if (!cat) return text_cat ? text_cat : "unclassified";
    return (refine && text_cat) ? text_cat : cat;
}

static int class_known(const char *cls)
{
    return cls && (!strcmp(cls, "hard") || !strcmp(cls, "soft") || !strcmp(cls, "undetermined"));
}

/* '4' when a category names a temporary cause, '5' when it names a dead address, else 0. */
static char category_class(const char *category)
{
    static const char *const transient[] = {"dns_failure", "connection_error",
                                            "transient_failure", NULL};
    static const char *const permanent[] = {"invalid_recipient", "inactive_mailbox",
                                            "invalid_domain", NULL};
    for (const char *const *c = transient; category && *c; c++)
        if (!strcmp(*c, category)) return '4';
    for (const char *const *c = permanent; category && *c; c++)
        if (!strcmp(*c, category)) return '5';
    return 0;
}

static char class_char(const char *cls)
{
    if (!cls) return 0;
    if (!strcmp(cls, "hard")) return '5';
    if (!strcmp(cls, "soft")) return '4';
    return 0;
}

void mh_bounce_classify_as(json_t *bounce, const char *event_class)
{
    if (!json_is_object(bounce)) return;
    const char *diag = mh_json_str(bounce, "diagnostic");
    char enhanced[16];
    settle_enhanced(bounce, diag, enhanced, sizeof(enhanced));
    int smtp = settle_smtp(bounce, diag);
    /* 1. The codes. */
    char code_cls = failure_class(enhanced, smtp);
    /* 2. The provider's verdict: its class, else the class its category implies. */
    char *given_class = NULL;
    if (class_known(mh_json_str(bounce, "class"))) given_class = mh_strdup(mh_json_str(bounce, "class"));
    if (json_object_get(bounce, "class")) json_object_del(bounce, "class");
    const char *given = mh_json_str(bounce, "category");
    if (given && !mh_bounce_category_known(given)) {
        json_object_del(bounce, "category");
        given = NULL;
    }
    char provider_cls = given_class ? class_char(given_class) : category_class(given);
    char cls = code_cls;
    /* A permanent code does not overrule a provider that calls the cause temporary:
     * suppression is for good, so the doubt goes to the address. */
    if (cls == '5' && provider_cls == '4') cls = '4';
    if (!cls) cls = provider_cls;
    /* 3. The event's name, unless the text names a temporary cause. */
    if (!cls && !given_class && event_class) {
        cls = class_char(event_class);
        if (cls == '5' && !given && category_class(category_for(enhanced, smtp, 0, diag)) == '4')
            cls = '4';
    }

    if (!given) mh_event_set_str(bounce, "category", category_for(enhanced, smtp, cls, diag));
    if (cls) mh_event_set_str(bounce, "class", cls == '5' ? "hard" : "soft");
    else mh_event_set_str(bounce, "class", given_class ? given_class : "undetermined");
    free(given_class);
}

void mh_bounce_classify(json_t *bounce)
{
    mh_bounce_classify_as(bounce, NULL);
}

/* ---- Amazon SES bounce vocabulary (also used by providers that mirror it) ---- */

void mh_bounce_ses_kind(json_t *bounce, const char *type, const char *subtype)
{
    if (type) {
        if (!strcasecmp(type, "Permanent")) mh_event_set_str(bounce, "class", "hard");
        else if (!strcasecmp(type, "Transient")) mh_event_set_str(bounce, "class", "soft");
        else if (!strcasecmp(type, "Undetermined")) mh_event_set_str(bounce, "class", "undetermined");
    }
    if (!subtype) return;
    static const struct {
        const char *subtype;
        const char *category;
    } cats[] = {
        {"NoEmail", "invalid_recipient"},
        {"Suppressed", "policy_rejection"},
        {"OnAccountSuppressionList", "policy_rejection"},
        {"MailboxFull", "mailbox_full"},
        {"MessageTooLarge", "protocol_error"},
        {"ContentRejected", "spam_content"},
        {"AttachmentRejected", "spam_content"},
    };
    for (size_t i = 0; i < sizeof(cats) / sizeof(cats[0]); i++)
        if (!strcasecmp(subtype, cats[i].subtype))
            mh_event_set_str(bounce, "category", cats[i].category);
}

void mh_bounce_set_provider_kind(json_t *bounce, const char *type, const char *subtype)
{
    mh_event_set_str(bounce, "provider_type", type);
    mh_event_set_str(bounce, "provider_subtype", subtype);
}
