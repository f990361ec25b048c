/*
 * timeutil.c — clocks and timestamp parsing/formatting (see timeutil.h).
 */
#include "mailhook/timeutil.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

int64_t mh_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t mh_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int64_t mh_mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* v's last n decimal digits, zero-padded, at p. */
static void put_digits(char *p, int v, int n)
{
    for (int i = n - 1; i >= 0; i--, v /= 10) p[i] = (char)('0' + v % 10);
}

void mh_time_format(int64_t ms, char *out)
{
    /* Far outside what can be written anyway (years 0..9999 are clamped below); keeps
     * the arithmetic from overflowing on any input. */
    const int64_t limit = (int64_t)1 << 52;
    if (ms < -limit) ms = -limit;
    if (ms > limit) ms = limit;
    time_t secs = (time_t)(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
    int millis = (int)(ms - (int64_t)secs * 1000);
    struct tm tm = {0};
    gmtime_r(&secs, &tm);
    /* Years outside 0..9999 cannot be written in RFC 3339; clamp rather than truncate. */
    int year = tm.tm_year + 1900;
    if (year < 0) year = 0;
    if (year > 9999) year = 9999;
    /* Written digit by digit: every canonical event carries two or three of these, and
     * snprintf's format parsing was most of their cost. */
    _Static_assert(MH_TIME_BUFSZ >= sizeof("0000-00-00T00:00:00.000Z"), "MH_TIME_BUFSZ");
    memcpy(out, "0000-00-00T00:00:00.000Z", sizeof("0000-00-00T00:00:00.000Z"));
    put_digits(out, year, 4);
    put_digits(out + 5, tm.tm_mon + 1, 2);
    put_digits(out + 8, tm.tm_mday, 2);
    put_digits(out + 11, tm.tm_hour, 2);
    put_digits(out + 14, tm.tm_min, 2);
    put_digits(out + 17, tm.tm_sec, 2);
    put_digits(out + 20, millis, 3); /* 0..999: secs is ms / 1000 rounded down */
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i])) return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Parses "+HH:MM", "+HHMM", "+HH", "Z", "UTC", "GMT" into seconds east of UTC. */
static int parse_offset(const char *p, int *offset_s)
{
    while (*p == ' ') p++;
    if (*p == '\0' || strcasecmp(p, "Z") == 0 || strcasecmp(p, "UTC") == 0 ||
        strcasecmp(p, "GMT") == 0) {
        *offset_s = 0;
        return 0;
    }
    if (*p != '+' && *p != '-') return -1;
    int sign = *p == '-' ? -1 : 1;
    int hh, mm = 0;
    p++;
    if (digits(p, 2, &hh) < 0) return -1;
    p += 2;
    if (*p == ':') p++;
    if (*p && digits(p, 2, &mm) < 0) return -1;
    if (*p) p += 2;
    if (*p) return -1;
    if (hh > 23 || mm > 59) return -1;
    *offset_s = sign * (hh * 3600 + mm * 60);
    return 0;
}

static int parse_iso(const char *s, int64_t *ms)
{
    int y, mo, d, h = 0, mi = 0, sec = 0, frac_ms = 0, off = 0;
    size_t len = strlen(s);
    if (len < 10 || s[4] != '-' || s[7] != '-') return -1;
    if (digits(s, 4, &y) < 0 || digits(s + 5, 2, &mo) < 0 || digits(s + 8, 2, &d) < 0) return -1;
    const char *p = s + 10;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        p++;
        if (strlen(p) < 5 || digits(p, 2, &h) < 0 || p[2] != ':' || digits(p + 3, 2, &mi) < 0)
            return -1;
        p += 5;
        if (*p == ':') {
            if (digits(p + 1, 2, &sec) < 0) return -1;
            p += 3;
        }
        if (*p == '.' || *p == ',') {
            p++;
            int n = 0, scale = 100;
            if (!isdigit((unsigned char)*p)) return -1;
            while (isdigit((unsigned char)*p)) {
                if (n < 3) frac_ms += (*p - '0') * scale;
                scale /= 10;
                n++;
                p++;
            }
        }
        if (parse_offset(p, &off) < 0) return -1;
    } else if (*p != '\0') {
        return -1;
    }
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || sec > 60) return -1;
    struct tm tm = {0};
    tm.tm_year = y - 1900;
    tm.tm_mon = mo - 1;
    tm.tm_mday = d;
    tm.tm_hour = h;
    tm.tm_min = mi;
    tm.tm_sec = sec;
    time_t t = timegm(&tm);
    *ms = ((int64_t)t - off) * 1000 + frac_ms;
    return 0;
}

static int parse_rfc1123(const char *s, int64_t *ms)
{
    struct tm tm = {0};
    const char *rest = strptime(s, "%a, %d %b %Y %H:%M:%S", &tm);
    if (!rest) return -1;
    int off;
    if (parse_offset(rest, &off) < 0) return -1;
    *ms = ((int64_t)timegm(&tm) - off) * 1000;
    return 0;
}

static int parse_epoch(const char *s, int64_t *ms)
{
    char *end;
    if (!*s) return -1;
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.') return -1;
    double v = strtod(s, &end);
    if (*end != '\0' || v < 0) return -1;
    /* Past 9999-12-31 even read as milliseconds: no time, and too big for an int64. */
    if (v > 253402300799999.0) return -1;
    /* Values this large are already milliseconds (after 2001-09-09 in ms, year 33658 in s). */
    if (v >= 1e12) *ms = (int64_t)v;
    else *ms = (int64_t)(v * 1000.0 + 0.5);
    return 0;
}

int mh_time_parse(const char *s, int64_t *ms)
{
    if (!s) return -1;
    while (*s == ' ') s++;
    if (parse_iso(s, ms) == 0) return 0;
    if (parse_epoch(s, ms) == 0) return 0;
    if (parse_rfc1123(s, ms) == 0) return 0;
    return -1;
}
