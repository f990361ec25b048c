/*
 * timeutil.h — wall-clock milliseconds and RFC 3339 timestamps.
 *
 * mailhook writes every time as RFC 3339, UTC, with milliseconds
 * ("2026-02-25T12:00:00.000Z"). Providers send many spellings; mh_time_parse
 * accepts the ones seen in the wild.
 */
#ifndef MH_TIMEUTIL_H
#define MH_TIMEUTIL_H

#include <stdint.h>

#define MH_TIME_BUFSZ 32

int64_t mh_now_ms(void);
/* Monotonic clock in milliseconds, for deadlines and intervals. */
int64_t mh_mono_ms(void);
/* The same clock in microseconds, for latency measurements. */
int64_t mh_mono_us(void);

/* Writes "YYYY-MM-DDTHH:MM:SS.mmmZ" into out (at least MH_TIME_BUFSZ bytes). */
void mh_time_format(int64_t ms, char *out);

/*
 * Parses RFC 3339 / ISO 8601 ("2026-02-25T12:00:00Z", with fractions and offsets,
 * a space instead of "T"), RFC 1123 ("Tue, 25 Feb 2026 12:00:00 GMT" or "+0000"),
 * and Unix seconds (integer or fractional, as a string). Returns 0 and sets *ms,
 * or -1 when the text is none of these.
 */
int mh_time_parse(const char *s, int64_t *ms);

#endif
