/*
 * test_bounce.c — bounce classification against diagnostic texts as real receivers
 * word them (Gmail, Outlook/Office 365, Yahoo, iCloud, Exchange, Postfix, Exim,
 * Sendmail, qmail, appliances), with and without the "smtp; " prefix of DSNs, with
 * enhanced codes, with basic reply codes only and with text only. Each row states the
 * class, category, SMTP code and enhanced code the classifier must produce.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "mailhook/bounce.h"

struct bounce_case {
    const char *diagnostic;
    const char *cls;
    const char *category;
    int smtp;             /* 0: absent */
    const char *enhanced; /* NULL: absent */
};

static const struct bounce_case cases[] = {
    /* Gmail */
    {"smtp; 550-5.1.1 The email account that you tried to reach does not exist. Please try "
     "double-checking the recipient's email address for typos or unnecessary spaces. Learn more "
     "at https://support.google.com/mail/?p=NoSuchUser d2si1234567qkb.123 - gsmtp",
     "hard", "invalid_recipient", 550, "5.1.1"},
    {"550 5.2.1 The email account that you tried to reach is disabled. Learn more at "
     "https://support.google.com/mail/?p=DisabledUser a1si2 - gsmtp",
     "hard", "inactive_mailbox", 550, "5.2.1"},
    {"452-4.2.2 The email account that you tried to reach is over quota. Please direct the "
     "recipient to https://support.google.com/mail/?p=OverQuotaTemp z5si3 - gsmtp",
     "soft", "mailbox_full", 452, "4.2.2"},
    {"552-5.2.2 The email account that you tried to reach is over quota and inactive.",
     "hard", "mailbox_full", 552, "5.2.2"},
    {"550-5.7.26 This mail is unauthenticated, which poses a security risk to the sender and "
     "Gmail users, and has been blocked. The sender must authenticate with at least one of SPF "
     "or DKIM.",
     "hard", "policy_rejection", 550, "5.7.26"},
    {"421-4.7.28 [203.0.113.9      15] Our system has detected an unusual rate of unsolicited "
     "mail originating from your IP address. To protect our users from spam, mail sent from "
     "your IP address has been temporarily rate limited.",
     "soft", "spam_block", 421, "4.7.28"},
    {"550-5.7.1 [203.0.113.9      12] Our system has detected that this message is likely "
     "unsolicited mail. To reduce the amount of spam sent to Gmail, this message has been "
     "blocked.",
     "hard", "spam_content", 550, "5.7.1"},
    {"550-5.7.1 The IP you're using to send mail is not authorized to send email directly to "
     "our servers. Please use the SMTP relay at your service provider instead.",
     "hard", "policy_rejection", 550, "5.7.1"},
    {"421-4.7.0 [203.0.113.9 15] Our system has detected an unusual rate of unsolicited mail "
     "originating from your IP address.",
     "soft", "spam_block", 421, "4.7.0"},
    {"450-4.2.1 The user you are trying to contact is receiving mail at a rate that prevents "
     "additional messages from being delivered.",
     "soft", "inactive_mailbox", 450, "4.2.1"},
    {"550 5.7.25 [203.0.113.9] The IP address sending this message does not have a PTR record "
     "setup, or the corresponding forward DNS entry does not point to the sending IP.",
     "hard", "policy_rejection", 550, "5.7.25"},
    /* Outlook / Office 365 / Exchange */
    {"550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient someone@contoso.com not found by SMTP "
     "address lookup",
     "hard", "invalid_recipient", 550, "5.1.10"},
    {"550 5.4.1 Recipient address rejected: Access denied. AS(201806281) "
     "[DM6NAM12FT012.eop-nam12.prod.protection.outlook.com 2026-01-01T00:00:00.000Z]",
     "hard", "invalid_recipient", 550, "5.4.1"},
    {"550 5.7.1 Service unavailable, Client host [203.0.113.9] blocked using Spamhaus. To request "
     "removal from this list see https://www.spamhaus.org/query/ip/203.0.113.9 AS(1450)",
     "hard", "spam_block", 550, "5.7.1"},
    {"550 5.7.606 Access denied, banned sending IP [203.0.113.9]. To request removal from this "
     "list please visit https://sender.office.com/ and follow the directions.",
     "hard", "spam_block", 550, "5.7.606"},
    {"550 5.7.708 Service unavailable. Access denied, traffic not accepted from this IP.",
     "hard", "spam_block", 550, "5.7.708"},
    {"550 5.7.1 Unfortunately, messages from [203.0.113.9] weren't sent. Please contact your "
     "Internet service provider since part of their network is on our block list (S3150).",
     "hard", "spam_block", 550, "5.7.1"},
    {"550 5.7.509 Access denied, sending domain example.com does not pass DMARC verification and "
     "has a DMARC policy of reject.",
     "hard", "policy_rejection", 550, "5.7.509"},
    {"451 4.7.500 Server busy. Please try again later from [203.0.113.9]. (S77719)",
     "soft", "transient_failure", 451, "4.7.500"},
    {"554 5.2.2 mailbox full; STOREDRV.Deliver.Exception:QuotaExceededException."
     "MapiExceptionShutoffQuotaExceeded",
     "hard", "mailbox_full", 554, "5.2.2"},
    {"Remote Server returned '550 5.1.1 RESOLVER.ADR.RecipNotFound; not found'",
     "hard", "invalid_recipient", 550, "5.1.1"},
    {"Remote Server returned '554 5.4.4 SMTPSEND.DNS.NonExistentDomain; nonexistent domain'",
     "hard", "invalid_domain", 554, "5.4.4"},
    {"#550 5.1.1 RESOLVER.ADR.ExRecipNotFound; not found ##",
     "hard", "invalid_recipient", 550, "5.1.1"},
    {"550 5.7.520 Access denied, Your organization does not allow external forwarding.",
     "hard", "policy_rejection", 550, "5.7.520"},
    {"550 5.1.8 Access denied, bad outbound sender.",
     "hard", "policy_rejection", 550, "5.1.8"},
    {"421 4.3.2 The maximum number of concurrent server connections has exceeded a limit, "
     "closing transmission channel",
     "soft", "connection_error", 421, "4.3.2"},
    {"452 4.3.1 Insufficient system resources",
     "soft", "transient_failure", 452, "4.3.1"},
    {"550 5.7.350 Remote server returned message detected as spam -> 554 5.7.1 Message rejected.",
     "hard", "spam_content", 550, "5.7.350"},
    {"550 5.7.133 RESOLVER.RST.SenderNotAuthenticatedForGroup; authentication required",
     "hard", "policy_rejection", 550, "5.7.133"},
    /* Yahoo / AOL */
    {"554 delivery error: dd This user doesn't have a yahoo.com account (someone@yahoo.com) [0] "
     "- mta1003.mail.gq1.yahoo.com",
     "hard", "invalid_recipient", 554, NULL},
    {"554 delivery error: dd Sorry your message to someone@yahoo.com cannot be delivered. This "
     "mailbox is disabled (554.30). - mta1234.mail.bf1.yahoo.com",
     "hard", "inactive_mailbox", 554, NULL},
    {"421 4.7.0 [TSS04] Messages from 203.0.113.9 temporarily deferred due to unexpected volume "
     "or user complaints - 4.16.55.1; see https://postmaster.yahooinc.com/error-codes",
     "soft", "spam_block", 421, "4.7.0"},
    {"553 5.7.1 [BL21] Connections will not be accepted from 203.0.113.9, because the ip is in "
     "Spamhaus's list; see https://postmaster.yahooinc.com/error-codes",
     "hard", "spam_block", 553, "5.7.1"},
    {"554 5.7.9 Message not accepted for policy reasons. See "
     "https://postmaster.yahooinc.com/error-codes",
     "hard", "policy_rejection", 554, "5.7.9"},
    {"552 1 Requested mail action aborted, mailbox not found",
     "hard", "invalid_recipient", 552, NULL},
    {"421 Message from (203.0.113.9) temporarily deferred - 4.16.50. Please refer to "
     "https://postmaster.yahooinc.com/error-codes",
     "soft", "transient_failure", 421, NULL},
    /* iCloud, Comcast, Zoho, mail.ru */
    {"550 5.7.1 [CS01] Message rejected due to local policy. Please visit "
     "https://support.apple.com/en-us/HT204137",
     "hard", "policy_rejection", 550, "5.7.1"},
    {"552 5.2.2 <someone@icloud.com>: user is over quota",
     "hard", "mailbox_full", 552, "5.2.2"},
    {"554 5.7.1 [203.0.113.9] Comcast block for spam. Please see "
     "http://postmaster.comcast.net/smtp-error-codes.php#BL000000",
     "hard", "spam_block", 554, "5.7.1"},
    {"550 5.1.1 User does not exist - <someone@zoho.com>",
     "hard", "invalid_recipient", 550, "5.1.1"},
    {"550 Message was not accepted -- invalid mailbox. Local mailbox someone@mail.ru is "
     "unavailable: user not found",
     "hard", "invalid_recipient", 550, NULL},
    /* Postfix */
    {"host mx.example.com[203.0.113.5] said: 550 5.1.1 <bob@example.com>: Recipient address "
     "rejected: User unknown in virtual mailbox table (in reply to RCPT TO command)",
     "hard", "invalid_recipient", 550, "5.1.1"},
    {"smtp; 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in local "
     "recipient table",
     "hard", "invalid_recipient", 550, "5.1.1"},
    {"host mx.example.com[203.0.113.5] said: 452 4.2.2 Mailbox full (in reply to RCPT TO command)",
     "soft", "mailbox_full", 452, "4.2.2"},
    {"host mx.example.com[203.0.113.5] said: 554 5.7.1 Service unavailable; Client host "
     "[198.51.100.1] blocked using zen.spamhaus.org (in reply to RCPT TO command)",
     "hard", "spam_block", 554, "5.7.1"},
    {"host mx.example.com[203.0.113.5] said: 450 4.7.1 <bob@example.com>: Recipient address "
     "rejected: Greylisted, see http://postgrey.schweikert.ch/help/example.com.html (in reply to "
     "RCPT TO command)",
     "soft", "transient_failure", 450, "4.7.1"},
    {"host mx.example.com[203.0.113.5] said: 554 5.7.1 <bob@example.com>: Relay access denied (in "
     "reply to RCPT TO command)",
     "hard", "policy_rejection", 554, "5.7.1"},
    {"host mx.example.com[203.0.113.5] said: 552 5.3.4 Message size exceeds fixed limit (in reply "
     "to end of DATA command)",
     "hard", "protocol_error", 552, "5.3.4"},
    {"Host or domain name not found. Name service error for name=example.invalid type=MX: Host "
     "not found, try again",
     "undetermined", "invalid_domain", 0, NULL},
    {"connect to mx.example.com[203.0.113.5]:25: Connection timed out",
     "undetermined", "connection_error", 0, NULL},
    {"delivery temporarily suspended: connect to mx.example.com[203.0.113.5]:587: Connection "
     "refused",
     "undetermined", "connection_error", 0, NULL},
    {"conversation with mx.example.com[203.0.113.5] timed out while receiving the initial server "
     "greeting",
     "undetermined", "connection_error", 0, NULL},
    {"mail for example.com loops back to myself",
     "undetermined", "routing_error", 0, NULL},
    {"unknown user: \"bob\"",
     "undetermined", "invalid_recipient", 0, NULL},
    {"x-postfix; Host or domain name not found. Name service error for name=example.invalid "
     "type=A: Host not found",
     "undetermined", "invalid_domain", 0, NULL},
    /* Exim */
    {"SMTP error from remote mail server after RCPT TO:<bob@example.com>: host mx.example.com "
     "[203.0.113.5]: 550 5.1.1 <bob@example.com>: Recipient address rejected: User unknown in "
     "relay recipient table",
     "hard", "invalid_recipient", 550, "5.1.1"},
    {"SMTP error from remote mail server after RCPT TO:<bob@example.com>: 550 No Such User Here",
     "hard", "invalid_recipient", 550, NULL},
    {"SMTP error from remote mail server after end of data: 554 5.7.1 Message rejected as spam",
     "hard", "spam_content", 554, "5.7.1"},
    {"retry timeout exceeded",
     "undetermined", "transient_failure", 0, NULL},
    {"all relevant MX records point to non-existent hosts",
     "undetermined", "invalid_domain", 0, NULL},
    {"Unrouteable address",
     "undetermined", "routing_error", 0, NULL},
    {"mailbox is full: retry timeout exceeded",
     "undetermined", "transient_failure", 0, NULL},
    /* Sendmail */
    {"----- The following addresses had permanent fatal errors ----- <bob@example.com> (reason: "
     "550 5.1.1 <bob@example.com>... User unknown)",
     "hard", "invalid_recipient", 550, "5.1.1"},
    {"<<< 550 5.1.1 <bob@example.com>... User unknown",
     "hard", "invalid_recipient", 550, "5.1.1"},
    {"Deferred: Connection refused by mx.example.com.",
     "undetermined", "connection_error", 0, NULL},
    {"451 4.4.1 reply: read error from mx.example.com.",
     "soft", "connection_error", 451, "4.4.1"},
    {"554 5.0.0 Service unavailable",
     "hard", "unclassified", 554, "5.0.0"},
    {"553 5.1.8 <sender@example.com>... Domain of sender address sender@example.com does not "
     "exist",
     "hard", "policy_rejection", 553, "5.1.8"},
    {"550 5.7.1 <bob@example.com>... Relaying denied. Proper authentication required.",
     "hard", "policy_rejection", 550, "5.7.1"},
    {"452 4.4.5 Insufficient disk space; try again later",
     "soft", "transient_failure", 452, "4.4.5"},
    /* qmail and appliances */
    {"553 sorry, that domain isn't in my list of allowed rcpthosts (#5.7.1)",
     "hard", "policy_rejection", 553, "5.7.1"},
    {"554 Service unavailable; Client host [203.0.113.9] blocked using Barracuda Reputation, "
     "http://www.barracudanetworks.com/reputation/?r=1&ip=203.0.113.9",
     "hard", "spam_block", 554, NULL},
    {"550 Rejected by header based Anti-Spoofing policy: bob@example.com - "
     "https://community.mimecast.com/docs/DOC-1369#550",
     "hard", "policy_rejection", 550, NULL},
    /* SES-style DSN text */
    {"smtp; 554 4.4.7 Message expired: unable to deliver in 840 minutes.<421 4.4.0 Unable to "
     "lookup DNS for example.com>",
     "soft", "transient_failure", 554, "4.4.7"},
    {"smtp; 550 5.1.1 user unknown", "hard", "invalid_recipient", 550, "5.1.1"},
    {"SMTP; 552 5.2.2 Mailbox full", "hard", "mailbox_full", 552, "5.2.2"},
    /* Basic reply codes only */
    {"550 Requested action not taken: mailbox unavailable",
     "hard", "invalid_recipient", 550, NULL},
    {"550 Rejected", "hard", "policy_rejection", 550, NULL},
    {"554 Transaction failed", "hard", "policy_rejection", 554, NULL},
    {"551 User not local; please try <forward@example.com>",
     "hard", "invalid_recipient", 551, NULL},
    {"452 Insufficient system storage", "soft", "transient_failure", 452, NULL},
    {"552 Requested mail action aborted: exceeded storage allocation",
     "hard", "mailbox_full", 552, NULL},
    {"552 Message size exceeds maximum permitted", "hard", "protocol_error", 552, NULL},
    {"421 Service not available, closing transmission channel",
     "soft", "connection_error", 421, NULL},
    {"450 Requested mail action not taken: mailbox unavailable",
     "soft", "transient_failure", 450, NULL},
    {"451 Requested action aborted: local error in processing",
     "soft", "transient_failure", 451, NULL},
    {"550 Mailbox quota exceeded", "hard", "mailbox_full", 550, NULL},
    {"550 Access denied - Invalid HELO name (See RFC2821 4.1.1.1)",
     "hard", "policy_rejection", 550, NULL},
    {"500 Syntax error, command unrecognized", "hard", "unclassified", 500, NULL},
    /* Text only */
    {"Mailbox does not exist", "undetermined", "invalid_recipient", 0, NULL},
    {"The recipient's mailbox is full", "undetermined", "mailbox_full", 0, NULL},
    {"Domain not found", "undetermined", "invalid_domain", 0, NULL},
    {"Blocked by Spamhaus", "undetermined", "spam_block", 0, NULL},
    {"Message contains a virus", "undetermined", "spam_content", 0, NULL},
    {"DMARC policy violation", "undetermined", "policy_rejection", 0, NULL},
    {"The account has been suspended", "undetermined", "inactive_mailbox", 0, NULL},
    {"Something went wrong", "undetermined", "unclassified", 0, NULL},
    {"", "undetermined", "unclassified", 0, NULL},
};

static int check_case(const struct bounce_case *c)
{
    json_t *b = json_object();
    if (*c->diagnostic) json_object_set_new(b, "diagnostic", json_string(c->diagnostic));
    mh_bounce_classify(b);

    const char *cls = json_string_value(json_object_get(b, "class"));
    const char *cat = json_string_value(json_object_get(b, "category"));
    const char *enh = json_string_value(json_object_get(b, "enhanced_code"));
    json_t *smtp = json_object_get(b, "smtp_code");
    int ok = cls && !strcmp(cls, c->cls) && cat && !strcmp(cat, c->category) &&
             (c->smtp ? json_integer_value(smtp) == c->smtp : smtp == NULL) &&
             (c->enhanced ? (enh && !strcmp(enh, c->enhanced)) : enh == NULL);
    if (!ok) {
        char *got = json_dumps(b, JSON_SORT_KEYS);
        print_error("diagnostic: %s\n  want class=%s category=%s smtp=%d enhanced=%s\n  got  %s\n",
                    c->diagnostic, c->cls, c->category, c->smtp, c->enhanced ? c->enhanced : "-",
                    got);
        free(got);
    }
    json_decref(b);
    return ok;
}

static void test_table(void **state)
{
    (void)state;
    size_t n = sizeof(cases) / sizeof(cases[0]);
    size_t failed = 0;
    assert_true(n >= 60);
    for (size_t i = 0; i < n; i++) failed += !check_case(&cases[i]);
    assert_int_equal(failed, 0);
}

/* What the provider already said wins over what the text suggests. */
static void test_provider_fields_win(void **state)
{
    (void)state;
    json_t *b = json_pack("{s:s, s:s, s:s}", "diagnostic", "550 5.1.1 user unknown", "class",
                          "soft", "category", "mailbox_full");
    mh_bounce_classify(b);
    assert_string_equal(json_string_value(json_object_get(b, "class")), "soft");
    assert_string_equal(json_string_value(json_object_get(b, "category")), "mailbox_full");
    json_decref(b);

    /* A category outside the vocabulary is replaced; an unknown class too. */
    b = json_pack("{s:s, s:s, s:s}", "diagnostic", "550 5.1.1 user unknown", "class", "fatal",
                  "category", "NoSuchUser");
    mh_bounce_classify(b);
    assert_string_equal(json_string_value(json_object_get(b, "class")), "hard");
    assert_string_equal(json_string_value(json_object_get(b, "category")), "invalid_recipient");
    json_decref(b);
}

/*
 * The precedence of docs/bounces.md: codes, then the provider's class, then the class its
 * category implies, then the event's name; a permanent code never hardens a provider's
 * temporary verdict, and text naming a temporary cause never lets a "hard" name stand.
 */
struct precedence_case {
    const char *diagnostic, *enhanced, *cls, *category, *event_class;
    const char *want;
};

static void test_precedence(void **state)
{
    (void)state;
    static const struct precedence_case pc[] = {
        /* 1. codes over everything below them */
        {"550 5.1.1 user unknown", NULL, "hard", NULL, "soft", "hard"},
        {"451 4.7.1 try later", NULL, "hard", NULL, "hard", "soft"},
        {NULL, "4.4.7", "hard", NULL, "hard", "soft"},
        {NULL, "5.1.1", NULL, NULL, "soft", "hard"},
        {"421 too busy", NULL, "undetermined", NULL, NULL, "soft"},
        /* ... except a provider's temporary verdict stands against a permanent code */
        {"552 5.2.2 mailbox full", NULL, "soft", NULL, NULL, "soft"},
        {"550 5.4.4 unrouteable", NULL, NULL, "dns_failure", "hard", "soft"},
        /* 2. the provider's class, then its category, over the event's name */
        {"mailbox unavailable", NULL, "soft", NULL, "hard", "soft"},
        {NULL, NULL, "undetermined", NULL, "hard", "undetermined"},
        {NULL, NULL, NULL, "connection_error", "hard", "soft"},
        {NULL, NULL, NULL, "dns_failure", "hard", "soft"},
        {NULL, NULL, NULL, "transient_failure", "hard", "soft"},
        {NULL, NULL, NULL, "invalid_recipient", "soft", "hard"},
        {NULL, NULL, NULL, "spam_block", "hard", "hard"},
        /* 3. the event's name, unless the text names a temporary cause */
        {NULL, NULL, NULL, NULL, "hard", "hard"},
        {NULL, NULL, NULL, NULL, "soft", "soft"},
        {"Connection error: Could not connect to any mail server", NULL, NULL, NULL, "hard", "soft"},
        {"user unknown", NULL, NULL, NULL, "hard", "hard"},
        /* nothing to go on */
        {"Connection timed out", NULL, NULL, NULL, NULL, "undetermined"},
        {NULL, NULL, NULL, NULL, NULL, "undetermined"},
    };
    int failed = 0;
    for (size_t i = 0; i < sizeof(pc) / sizeof(pc[0]); i++) {
        json_t *b = json_object();
        if (pc[i].diagnostic) json_object_set_new(b, "diagnostic", json_string(pc[i].diagnostic));
        if (pc[i].enhanced) json_object_set_new(b, "enhanced_code", json_string(pc[i].enhanced));
        if (pc[i].cls) json_object_set_new(b, "class", json_string(pc[i].cls));
        if (pc[i].category) json_object_set_new(b, "category", json_string(pc[i].category));
        mh_bounce_classify_as(b, pc[i].event_class);
        const char *got = json_string_value(json_object_get(b, "class"));
        if (!got || strcmp(got, pc[i].want)) {
            print_error("case %zu: want class %s, got %s\n", i, pc[i].want, got ? got : "(none)");
            failed++;
        }
        if (pc[i].category)
            assert_string_equal(json_string_value(json_object_get(b, "category")), pc[i].category);
        json_decref(b);
    }
    assert_int_equal(failed, 0);
}

static void test_provider_kind(void **state)
{
    (void)state;
    json_t *b = json_object();
    mh_bounce_set_provider_kind(b, "Permanent", "");
    assert_string_equal(json_string_value(json_object_get(b, "provider_type")), "Permanent");
    assert_null(json_object_get(b, "provider_subtype"));
    mh_bounce_set_provider_kind(b, NULL, "NoEmail");
    assert_string_equal(json_string_value(json_object_get(b, "provider_subtype")), "NoEmail");
    json_decref(b);
}

/* Structured codes from the provider are used; bad ones are dropped, not kept. */
static void test_structured_codes(void **state)
{
    (void)state;
    json_t *b = json_pack("{s:s, s:i}", "enhanced_code", "4.2.2", "smtp_code", 452);
    mh_bounce_classify(b);
    assert_string_equal(json_string_value(json_object_get(b, "class")), "soft");
    assert_string_equal(json_string_value(json_object_get(b, "category")), "mailbox_full");
    json_decref(b);

    b = json_pack("{s:s, s:i, s:s}", "enhanced_code", "n/a", "smtp_code", 99, "diagnostic",
                  "smtp; 550 5.1.1 user unknown");
    mh_bounce_classify(b);
    assert_string_equal(json_string_value(json_object_get(b, "enhanced_code")), "5.1.1");
    assert_int_equal(json_integer_value(json_object_get(b, "smtp_code")), 550);
    json_decref(b);

    b = json_pack("{s:s}", "smtp_code", "550");
    mh_bounce_classify(b);
    assert_true(json_is_integer(json_object_get(b, "smtp_code")));
    assert_string_equal(json_string_value(json_object_get(b, "class")), "hard");
    json_decref(b);

    /* Without any code the provider's class decides how the text reads. */
    b = json_pack("{s:s, s:s}", "class", "soft", "diagnostic", "Domain not found");
    mh_bounce_classify(b);
    assert_string_equal(json_string_value(json_object_get(b, "category")), "dns_failure");
    json_decref(b);
}

/* Wrong JSON types never crash and never produce non-canonical output. */
static void test_odd_types(void **state)
{
    (void)state;
    json_t *b = json_pack("{s:i, s:[], s:{}, s:b}", "diagnostic", 5, "enhanced_code", "class",
                          "category", 1);
    mh_bounce_classify(b);
    assert_string_equal(json_string_value(json_object_get(b, "class")), "undetermined");
    assert_string_equal(json_string_value(json_object_get(b, "category")), "unclassified");
    json_decref(b);
    mh_bounce_classify(NULL);
}

struct find_case {
    const char *text;
    const char *want; /* NULL: none */
};

static void test_find_enhanced(void **state)
{
    (void)state;
    static const struct find_case fc[] = {
        {"550 5.1.1 user unknown", "5.1.1"},
        {"550-5.1.1 The email account", "5.1.1"},
        {"smtp; 554 5.7.606 Access denied", "5.7.606"},
        {"451 4.7.650 The mail server has been temporarily rate limited", "4.7.650"},
        {"(#5.7.1)", "5.7.1"},
        {"status=5.4.4", "5.4.4"},
        {"[4.2.2]", "4.2.2"},
        {"250 2.0.0 OK then 550 5.1.1 gone", "5.1.1"},
        {"250 2.0.0 OK", "2.0.0"},
        {"from 4.5.6.7 port 25", NULL},           /* an IPv4 address */
        {"client 203.0.113.5.1 rejected", NULL},  /* dotted number */
        {"[5.1.1.1] said no", NULL},              /* IPv4 that looks like a code */
        {"Postfix 2.10.1 here", NULL},            /* version: subject > 7 */
        {"Exim 4.94.2 ready", NULL},              /* version */
        {"v5.1.1 build", NULL},                   /* glued to a word */
        {"- 4.16.55.1; see", NULL},               /* Yahoo's internal code */
        {"RFC2821 4.1.1.1", NULL},                /* section number */
        {"version 5.1.1a", NULL},
        {"5.1.1234", NULL},                       /* detail longer than 3 digits */
        {"1.2.3", NULL},
        {"6.1.1", NULL},
        {"5.8.1", NULL},
        {"", NULL},
    };
    char out[16];
    for (size_t i = 0; i < sizeof(fc) / sizeof(fc[0]); i++) {
        int rc = mh_bounce_find_enhanced(fc[i].text, out, sizeof(out));
        if (fc[i].want) {
            if (rc != 0) print_error("no code found in \"%s\"\n", fc[i].text);
            assert_int_equal(rc, 0);
            assert_string_equal(out, fc[i].want);
        } else {
            if (rc == 0) print_error("\"%s\" taken as code %s\n", fc[i].text, out);
            assert_int_equal(rc, -1);
        }
    }
    assert_int_equal(mh_bounce_find_enhanced(NULL, out, sizeof(out)), -1);
    assert_int_equal(mh_bounce_find_enhanced("5.7.606", out, 4), -1); /* no room */
}

static void test_find_smtp(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        int want;
    } sc[] = {
        {"550 5.1.1 user unknown", 550},
        {"  550-5.1.1 The email account", 550},
        {"smtp; 421 4.7.0 try later", 421},
        {"SMTP;550 no", 550},
        {"host mx.example.com[203.0.113.5] said: 452 4.2.2 Mailbox full", 452},
        {"SMTP error from remote mail server after RCPT TO:<a@b>: 550 No Such User Here", 550},
        {"SMTP error ... host mx [203.0.113.5]: 554 5.7.1 spam", 554},
        {"<<< 550 5.1.1 <bob@example.com>... User unknown", 550},
        {"(reason: 550 5.1.1 <bob@example.com>... User unknown)", 550},
        {"Remote Server returned '554 5.4.4 SMTPSEND.DNS.NonExistentDomain'", 554},
        {"#550 5.1.1 RESOLVER.ADR.RecipNotFound; not found ##", 550},
        {"250 2.0.0 OK", 250},
        {"connect to mx.example.com[203.0.113.5]:587: Connection refused", 0}, /* a port */
        {"connect to mx.example.com[203.0.113.5]:25: Connection timed out", 0},
        {"rate limit of 500 messages per hour exceeded", 0},                   /* a count */
        {"Message could not be delivered for 5 days", 0},
        {"554.30 disabled", 0},
        {"5501 not a code", 0},
        {"600 out of range", 0},
        {"192.168.1.1 refused", 0},
        {"Mailbox does not exist", 0},
        {"", 0},
    };
    for (size_t i = 0; i < sizeof(sc) / sizeof(sc[0]); i++) {
        int got = mh_bounce_find_smtp(sc[i].text);
        if (got != sc[i].want)
            print_error("\"%s\": want %d, got %d\n", sc[i].text, sc[i].want, got);
        assert_int_equal(got, sc[i].want);
    }
    assert_int_equal(mh_bounce_find_smtp(NULL), 0);
}

static void test_category_known(void **state)
{
    (void)state;
    assert_true(mh_bounce_category_known("invalid_recipient"));
    assert_true(mh_bounce_category_known("unclassified"));
    assert_false(mh_bounce_category_known("hard"));
    assert_false(mh_bounce_category_known(""));
    assert_false(mh_bounce_category_known(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_provider_fields_win),
        cmocka_unit_test(test_precedence),
        cmocka_unit_test(test_provider_kind),
        cmocka_unit_test(test_structured_codes),
        cmocka_unit_test(test_odd_types),
        cmocka_unit_test(test_find_enhanced),
        cmocka_unit_test(test_find_smtp),
        cmocka_unit_test(test_category_known),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
