/*
 * provider_registry.c — the one table of providers. Adding a provider is one row here,
 * one file under providers/, one line in CMakeLists.txt and one fixtures folder.
 */
#include <string.h>

#include "mailhook/provider.h"

extern const struct mh_provider mh_provider_ivymail;
extern const struct mh_provider mh_provider_hmac;
extern const struct mh_provider mh_provider_cloudmailin;
extern const struct mh_provider mh_provider_getmailer;
extern const struct mh_provider mh_provider_postal;
extern const struct mh_provider mh_provider_ark;
extern const struct mh_provider mh_provider_sendgrid;
extern const struct mh_provider mh_provider_postmark;
extern const struct mh_provider mh_provider_mailgun;
extern const struct mh_provider mh_provider_ses;
extern const struct mh_provider mh_provider_resend;
extern const struct mh_provider mh_provider_sparkpost;
extern const struct mh_provider mh_provider_mandrill;
extern const struct mh_provider mh_provider_brevo;
extern const struct mh_provider mh_provider_mailjet;
extern const struct mh_provider mh_provider_standard;
extern const struct mh_provider mh_provider_mailersend;

const struct mh_provider *const mh_providers[] = {
    &mh_provider_ivymail,
    &mh_provider_hmac,
    &mh_provider_cloudmailin,
    &mh_provider_getmailer,
    &mh_provider_postal,
    &mh_provider_ark,
    &mh_provider_sendgrid,
    &mh_provider_postmark,
    &mh_provider_mailgun,
    &mh_provider_ses,
    &mh_provider_resend,
    &mh_provider_sparkpost,
    &mh_provider_mandrill,
    &mh_provider_brevo,
    &mh_provider_mailjet,
    &mh_provider_standard,
    &mh_provider_mailersend,
    NULL,
};

const struct mh_provider *mh_provider_find(const char *name)
{
    for (const struct mh_provider *const *p = mh_providers; *p; p++)
        if (strcmp((*p)->name, name) == 0) return *p;
    return NULL;
}
