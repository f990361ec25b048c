/*
 * bounce.h — bounce classification shared by every provider.
 *
 * Maps an RFC 3463 enhanced status code, an SMTP reply code and the diagnostic text to
 * bounce.class (hard | soft | undetermined) and bounce.category (the taxonomy in
 * design.md). The enhanced code's class decides permanence, its subject.detail the
 * category; text heuristics refine generic codes (5.7.1, 550, 554, ...). The tables and
 * their order are described at the top of bounce.c.
 */
#ifndef MH_BOUNCE_H
#define MH_BOUNCE_H

#include <jansson.h>
#include <stddef.h>

/*
 * Completes a canonical "bounce" object in place:
 * - extracts smtp_code (integer) and enhanced_code ("5.1.1") from "diagnostic" when
 *   they are absent, and drops a provider-given smtp_code outside 200..599 or an
 *   enhanced_code that is not one;
 * - sets "category" unless the provider already set a canonical one;
 * - sets "class" (hard | soft | undetermined) by the evidence, in this order
 *   (docs/bounces.md lists each provider's fields):
 *   1. the codes: 5.x.x / 5xx -> hard, 4.x.x / 4xx -> soft;
 *   2. the provider's verdict: the "class" it set, else the class its "category"
 *      implies (dns_failure, connection_error, transient_failure -> soft;
 *      invalid_recipient, inactive_mailbox, invalid_domain -> hard);
 *   3. the event's name (event_class of mh_bounce_classify_as), except that a
 *      diagnostic text naming a temporary cause turns a "hard" name soft;
 *   nothing to go on -> undetermined. One exception to the order: a permanent code does
 *   not overrule a provider that calls the cause temporary (a soft class or a
 *   temporary category): suppression is for good, a soft bounce only counts.
 *   The class also tells how to read a diagnostic that carries no code.
 */
void mh_bounce_classify(json_t *bounce);
/* mh_bounce_classify with the class the event's name implies ("hard", "soft" or NULL),
 * used only when neither the codes nor the provider decide. */
void mh_bounce_classify_as(json_t *bounce, const char *event_class);

/*
 * Keeps the provider's own bounce type and subtype, as sent, in bounce.provider_type and
 * bounce.provider_subtype (skipped when NULL or empty).
 */
void mh_bounce_set_provider_kind(json_t *bounce, const char *type, const char *subtype);

/*
 * Finds an enhanced status code ("5.1.1", "4.7.650") in text: class 2, 4 or 5, subject
 * 0-7, detail 1-3 digits, standing alone (not part of an IP address, a version number
 * or a longer dotted number). The first class-4/5 code wins; a class-2 code is
 * returned only when there is no other. Writes it into out (at least 12 bytes) and
 * returns 0, or -1 when there is none.
 */
int mh_bounce_find_enhanced(const char *text, char *out, size_t outlen);

/*
 * Finds a 3-digit SMTP reply code (2xx-5xx) where reply codes stand in diagnostic
 * texts: at the start (after an optional "smtp;" type prefix), or right after
 * "smtp;", "said:", "]:", ">:", "<<<", "reason:", "error:", "data:", "returned '"
 * or "#". Returns 0 when there is none (so a port or a count is never taken).
 */
int mh_bounce_find_smtp(const char *text);

/* 1 when category is one of the canonical bounce categories (design.md), else 0. */
int mh_bounce_category_known(const char *category);

/*
 * Sets class (and, where the subtype says it, category) of a canonical "bounce" object
 * from Amazon SES's bounceType / bounceSubType vocabulary, which IvyMail and Resend
 * mirror: Permanent -> hard, Transient -> soft, Undetermined -> undetermined; NoEmail
 * -> invalid_recipient, Suppressed / OnAccountSuppressionList -> policy_rejection,
 * MailboxFull -> mailbox_full, MessageTooLarge -> protocol_error, ContentRejected /
 * AttachmentRejected -> spam_content. Either may be NULL. Call mh_bounce_classify after.
 */
void mh_bounce_ses_kind(json_t *bounce, const char *type, const char *subtype);

#endif
