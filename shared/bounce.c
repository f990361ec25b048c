/*
 * bounce.c — bounce classification (see bounce.h).
 *
 * Three tables, applied in order: the enhanced status code (RFC 3463 and the IANA
 * registry: class decides permanence, subject.detail the category, an unknown detail
 * falls back to the subject's X.N.0 row), the basic SMTP reply code when there is no
 * enhanced code, and text heuristics that refine generic results (5.7.1, 550, 554).
 */
#include "mailhook/bounce.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mailhook/event.h"
#include "mailhook/log.h"

struct code_row {
    const char *code;     /* "S.D" (subject.detail) */
    const char *category; /* for class 5 */
    const char *category4; /* for class 4, when it differs */
};

static const struct code_row enhanced_rows[] = {
    {"0.0", "unclassified", "transient_failure"},
    {"1.0", "invalid_recipient", NULL},
    {"1.1", "invalid_recipient", NULL},
    {"1.2", "invalid_domain", NULL},
    {"1.3", "invalid_recipient", NULL},
    {"1.4", "invalid_recipient", NULL},
    {"1.6", "inactive_mailbox", NULL},
    {"1.7", "policy_rejection", NULL},
    {"1.8", "policy_rejection", NULL},
    {"1.10", "invalid_domain", NULL},
    {"2.0", "inactive_mailbox", "transient_failure"},
    {"2.1", "inactive_mailbox", NULL},
    {"2.2", "mailbox_full", NULL},
    {"2.3", "protocol_error", NULL},
    {"2.4", "routing_error", NULL},
    {"3.0", "unclassified", "transient_failure"},
    {"3.1", "transient_failure", NULL},
    {"3.2", "connection_error", NULL},
    {"3.3", "protocol_error", NULL},
    {"3.4", "protocol_error", NULL},
    {"3.5", "routing_error", NULL},
    {"4.0", "routing_error", NULL},
    {"4.1", "connection_error", NULL},
    {"4.2", "connection_error", NULL},
    {"4.3", "dns_failure", NULL},
    {"4.4", "invalid_domain", "dns_failure"},
    {"4.5", "transient_failure", NULL},
    {"4.6", "routing_error", NULL},
    {"4.7", "transient_failure", NULL},
    {"5.0", "protocol_error", NULL},
    {"6.0", "protocol_error", NULL},
    {"7.0", "policy_rejection", NULL},
    {"7.1", "policy_rejection", NULL},
    {"7.13", "policy_rejection", NULL},
    {"7.17", "inactive_mailbox", NULL},
    {"7.18", "invalid_domain", NULL},
    {"7.19", "transient_failure", NULL},
    {"7.28", "spam_block", NULL},
    {NULL, NULL, NULL},
};

/* Enhanced-code subjects whose whole range shares one category (X.5.*, X.6.*, X.7.3-7). */
static const char *subject_default(int subject, int detail)
{
    switch (subject) {
    case 0: return "unclassified";
    case 1: return "invalid_recipient";
    case 2: return "inactive_mailbox";
    case 3: return "transient_failure";
    case 4: return "routing_error";
    case 5: return "protocol_error";
    case 6: return "protocol_error";
    case 7: return (detail >= 3 && detail <= 7) ? "protocol_error" : "policy_rejection";
    default: return "unclassified";
    }
}

struct text_rule {
    const char *needle;
    const char *category;
};

/* Applied to lower-cased diagnostic text; first match wins, so order matters. */
static const struct text_rule text_rules[] = {
    {"user unknown", "invalid_recipient"},
    {"unknown user", "invalid_recipient"},
    {"no such user", "invalid_recipient"},
    {"does not exist", "invalid_recipient"},
    {"doesn't exist", "invalid_recipient"},
    {"unknown recipient", "invalid_recipient"},
    {"invalid recipient", "invalid_recipient"},
    {"recipient address rejected", "invalid_recipient"},
    {"no mailbox", "invalid_recipient"},
    {"mailbox not found", "invalid_recipient"},
    {"mailbox unavailable", "invalid_recipient"},
    {"address rejected", "invalid_recipient"},
    {"not found", "invalid_recipient"},
    {"over quota", "mailbox_full"},
    {"quota", "mailbox_full"},
    {"mailbox full", "mailbox_full"},
    {"mailbox is full", "mailbox_full"},
    {"insufficient storage", "mailbox_full"},
    {"disabled", "inactive_mailbox"},
    {"inactive", "inactive_mailbox"},
    {"deactivated", "inactive_mailbox"},
    {"suspended", "inactive_mailbox"},
    {"account closed", "inactive_mailbox"},
    {"no longer", "inactive_mailbox"},
    {"host not found", "invalid_domain"},
    {"domain not found", "invalid_domain"},
    {"nxdomain", "invalid_domain"},
    {"no mx", "invalid_domain"},
    {"name or service not known", "invalid_domain"},
    {"spamhaus", "spam_block"},
    {"blacklist", "spam_block"},
    {"blocklist", "spam_block"},
    {"rbl", "spam_block"},
    {"listed", "spam_block"},
    {"reputation", "spam_block"},
    {"blocked", "spam_block"},
    {"rate limit", "spam_block"},
    {"too many", "spam_block"},
    {"spam", "spam_content"},
    {"phishing", "spam_content"},
    {"virus", "spam_content"},
    {"malware", "spam_content"},
    {"content", "spam_content"},
    {"dmarc", "policy_rejection"},
    {"spf", "policy_rejection"},
    {"dkim", "policy_rejection"},
    {"authenticat", "policy_rejection"},
    {"policy", "policy_rejection"},
    {"relay", "policy_rejection"},
    {"timed out", "connection_error"},
    {"timeout", "connection_error"},
    {"connection refused", "connection_error"},
    {"connection reset", "connection_error"},
    {"tls", "connection_error"},
    {NULL, NULL},
};

int mh_bounce_find_enhanced(const char *text, char *out, size_t outlen)
{
    if (!text) return -1;
    for (const char *p = text; *p; p++) {
        if ((*p != '2' && *p != '4' && *p != '5') || p[1] != '.') continue;
        if (p > text && (isalnum((unsigned char)p[-1]) || p[-1] == '.')) continue;
        const char *q = p + 2;
        int n1 = 0, n2 = 0;
        while (isdigit((unsigned char)q[n1]) && n1 < 4) n1++;
        if (n1 < 1 || n1 > 3 || q[n1] != '.') continue;
        const char *r = q + n1 + 1;
        while (isdigit((unsigned char)r[n2]) && n2 < 4) n2++;
        if (n2 < 1 || n2 > 3 || isalnum((unsigned char)r[n2])) continue;
        if (r[n2] == '.' && isdigit((unsigned char)r[n2 + 1])) continue; /* an IP address */
        size_t len = (size_t)(r + n2 - p);
        if (len + 1 > outlen) return -1;
        memcpy(out, p, len);
        out[len] = '\0';
        return 0;
    }
    return -1;
}

int mh_bounce_find_smtp(const char *text)
{
    if (!text) return 0;
    const char *p = text;
    while (*p == ' ' || *p == '\t') p++;
    if (strncasecmp(p, "smtp;", 5) == 0) {
        p += 5;
        while (*p == ' ') p++;
    }
    for (int tries = 0; *p && tries < 2; tries++) {
        if (p[0] >= '2' && p[0] <= '5' && isdigit((unsigned char)p[1]) &&
            isdigit((unsigned char)p[2]) && !isalnum((unsigned char)p[3]) && p[3] != '.')
            return (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
        /* "host mx.example.com said: 550 ..." — look once more after a colon. */
        const char *colon = strstr(p, "said:");
        if (!colon) break;
        p = colon + 5;
        while (*p == ' ') p++;
    }
    return 0;
}

static const char *by_enhanced(const char *code)
{
    int cls, subject, detail;
    if (sscanf(code, "%d.%d.%d", &cls, &subject, &detail) != 3) return NULL;
    char key[16];
    snprintf(key, sizeof(key), "%d.%d", subject, detail);
    for (const struct code_row *r = enhanced_rows; r->code; r++)
        if (!strcmp(r->code, key)) return (cls == 4 && r->category4) ? r->category4 : r->category;
    snprintf(key, sizeof(key), "%d.0", subject);
    for (const struct code_row *r = enhanced_rows; r->code; r++)
        if (!strcmp(r->code, key) && subject != 7)
            return (cls == 4 && r->category4) ? r->category4 : r->category;
    return subject_default(subject, detail);
}

static const char *by_smtp(int code, const char *text_category)
{
    switch (code) {
    case 421: return "connection_error";
    case 450: case 451: return "transient_failure";
    case 452: return text_category && !strcmp(text_category, "mailbox_full") ? "mailbox_full"
                                                                             : "transient_failure";
    case 550: return text_category && !strcmp(text_category, "invalid_recipient")
                         ? "invalid_recipient" : "policy_rejection";
    case 551: case 553: return "invalid_recipient";
    case 552: return "mailbox_full";
    case 554: return "policy_rejection";
    default: return code >= 500 ? "unclassified" : code >= 400 ? "transient_failure" : NULL;
    }
}

static const char *by_text(const char *text)
{
    if (!text) return NULL;
    char *low = mh_strdup(text);
    mh_lower(low);
    const char *cat = NULL;
    for (const struct text_rule *r = text_rules; r->needle && !cat; r++)
        if (strstr(low, r->needle)) cat = r->category;
    free(low);
    return cat;
}

/* Generic results that the diagnostic text may refine. */
static int is_generic(const char *cat)
{
    return !strcmp(cat, "policy_rejection") || !strcmp(cat, "unclassified") ||
           !strcmp(cat, "transient_failure");
}

void mh_bounce_classify(json_t *bounce)
{
    const char *diag = mh_json_str(bounce, "diagnostic");
    char enhanced[16] = "";
    json_int_t smtp = 0;

    const char *given = mh_json_str(bounce, "enhanced_code");
    if (given && mh_bounce_find_enhanced(given, enhanced, sizeof(enhanced)) == 0) {
        if (strcmp(given, enhanced)) mh_event_set_str(bounce, "enhanced_code", enhanced);
    } else if (mh_bounce_find_enhanced(diag, enhanced, sizeof(enhanced)) == 0) {
        mh_event_set_str(bounce, "enhanced_code", enhanced);
    } else {
        enhanced[0] = '\0';
        if (given) json_object_del(bounce, "enhanced_code");
    }
    if (mh_json_int(bounce, "smtp_code", &smtp) < 0) {
        smtp = mh_bounce_find_smtp(diag);
        if (smtp) mh_event_set_int(bounce, "smtp_code", smtp);
    }

    const char *text_cat = by_text(diag);
    if (!mh_json_str(bounce, "category")) {
        const char *cat = NULL;
        if (enhanced[0] && enhanced[0] != '2') cat = by_enhanced(enhanced);
        else if (smtp >= 400) cat = by_smtp((int)smtp, text_cat);
        if (!cat) cat = text_cat ? text_cat : "unclassified";
        else if (is_generic(cat) && text_cat) {
            /* A transient code stays transient unless the text names a mailbox problem. */
            int transient = enhanced[0] == '4' || (smtp >= 400 && smtp < 500);
            if (!transient || !strcmp(text_cat, "mailbox_full") || !strcmp(text_cat, "connection_error") ||
                !strcmp(text_cat, "spam_block"))
                cat = text_cat;
        }
        mh_event_set_str(bounce, "category", cat);
    }
    if (!mh_json_str(bounce, "class")) {
        char c = enhanced[0] ? enhanced[0] : (smtp ? (char)('0' + smtp / 100) : 0);
        mh_event_set_str(bounce, "class", c == '5' ? "hard" : c == '4' ? "soft" : "undetermined");
    }
}
