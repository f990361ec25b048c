/*
 * test_shutdown.c — the staged shutdown: it stops listening at once, ends the loop once
 * nothing is unanswered (not before), gives up after the grace period, and keeps the
 * loop running for the linger time so the last replies can be written.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <event2/event.h>

#include "mailhook/shutdown.h"
#include "mailhook/timeutil.h"

struct server {
    int listening;
    long unanswered;
    int ticks_after_answered; /* timer runs once nothing was unanswered */
};

static void stop_listening(void *arg)
{
    ((struct server *)arg)->listening = 0;
}

static long unanswered(void *arg)
{
    return ((struct server *)arg)->unanswered;
}

static void on_answered(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    ((struct server *)arg)->unanswered = 0;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    struct server *s = arg;
    if (s->unanswered == 0) s->ticks_after_answered++;
}

/* Runs a shutdown with 2 requests in flight, answered after answer_ms (never if < 0);
 * returns how long the loop ran. */
static int64_t run(struct server *s, long answer_ms, long grace_ms, long linger_ms)
{
    /* Taken before the answer's timer is armed, so took >= answer_ms holds exactly. */
    int64_t start = mh_mono_ms();
    struct event_base *base = event_base_new();
    struct event *answer = evtimer_new(base, on_answered, s);
    struct event *tick = event_new(base, -1, EV_PERSIST, on_tick, s);
    struct timeval tick_tv = {0, 10 * 1000};
    event_add(tick, &tick_tv);
    if (answer_ms >= 0) {
        struct timeval tv = {0, answer_ms * 1000};
        evtimer_add(answer, &tv);
    }
    s->listening = 1;
    s->unanswered = 2;
    const struct mh_shutdown_spec spec = {
        .stop_listening = stop_listening, .unanswered = unanswered, .arg = s,
        .grace_ms = grace_ms, .poll_ms = 10, .linger_ms = linger_ms, .what = "requests",
    };
    struct mh_shutdown *sd = mh_shutdown_begin(base, &spec);
    assert_non_null(sd);
    assert_int_equal(s->listening, 0);
    assert_true(mh_shutdown_grace_end_ms(sd) >= start + grace_ms);
    event_base_dispatch(base);
    int64_t took = mh_mono_ms() - start;
    mh_shutdown_free(sd);
    event_free(answer);
    event_free(tick);
    event_base_free(base);
    return took;
}

static void test_ends_once_answered(void **state)
{
    (void)state;
    struct server s = {0};
    int64_t took = run(&s, 100, 5000, 0);
    /* libevent's timers run on a coarse clock: allow them a few ms early. */
    assert_true(took >= 90);
    assert_true(took < 1000);
    assert_int_equal(s.unanswered, 0);
}

static void test_gives_up_after_the_grace_period(void **state)
{
    (void)state;
    struct server s = {0};
    int64_t took = run(&s, -1, 200, 0);
    assert_true(took >= 190);
    assert_true(took < 2000);
    assert_int_equal(s.unanswered, 2);
}

static void test_lingers_to_write_the_replies(void **state)
{
    (void)state;
    struct server s = {0};
    int64_t took = run(&s, 50, 5000, 300);
    assert_true(took >= 340);
    assert_true(took < 2000);
    /* the loop kept serving other events meanwhile */
    assert_true(s.ticks_after_answered >= 10);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ends_once_answered),
        cmocka_unit_test(test_gives_up_after_the_grace_period),
        cmocka_unit_test(test_lingers_to_write_the_replies),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
