/*
 * bounce.h — bounce classification shared by every provider.
 *
 * Maps an RFC 3463 enhanced status code, an SMTP reply code and the diagnostic text to
 * bounce.class (hard | soft | undetermined) and bounce.category (the taxonomy in
 * design.md). The enhanced code's class decides permanence, its subject.detail the
 * category; text heuristics refine generic codes (5.7.1, 550, 554, ...).
 */
#ifndef MH_BOUNCE_H
#define MH_BOUNCE_H

#include <jansson.h>

/*
 * Completes a canonical "bounce" object in place:
 * - extracts smtp_code (integer) and enhanced_code ("5.1.1") from "diagnostic" when
 *   they are absent;
 * - sets "category" unless the provider already set one;
 * - sets "class" unless the provider already set one: 5.x.x / 5xx -> hard,
 *   4.x.x / 4xx -> soft, nothing to go on -> undetermined.
 */
void mh_bounce_classify(json_t *bounce);

/*
 * Finds the first enhanced status code ("5.1.1", "4.7.650") in text; writes it into
 * out (at least 12 bytes) and returns 0, or -1 when there is none.
 */
int mh_bounce_find_enhanced(const char *text, char *out, size_t outlen);
/* Finds a leading or "smtp; "-prefixed 3-digit reply code (2xx-5xx); 0 when none. */
int mh_bounce_find_smtp(const char *text);

#endif
