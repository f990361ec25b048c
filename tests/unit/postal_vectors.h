/*
 * postal_vectors.h — the self-generated Postal test vector (samples/postal in the design
 * notes): the MessageSent body signed with the RSA-1024 key that postalserver/postal
 * commits for its CI (a public test key), the same public key in every encoding Postal
 * and its users hand around, and an unrelated key for "wrong key" cases.
 */
#ifndef MH_POSTAL_VECTORS_H
#define MH_POSTAL_VECTORS_H

#define POSTAL_BODY                                                                            \
    "{\"event\":\"MessageSent\",\"timestamp\":1477945177.12994,\"payload\":{\"status\":\"Sent" \
    "\",\"details\":\"Message sent by SMTP to aspmx.l.google.com (2a00:1450:400c:c0b::1b) (fr" \
    "om 2a00:67a0:a:15::2)\",\"output\":\"250 2.0.0 OK 1477944899 ly2si31746747wjb.95 - gsmtp" \
    "\",\"time\":0.22,\"sent_with_ssl\":true,\"timestamp\":1477945177.12994,\"message\":{\"id" \
    "\":12345,\"token\":\"abcdef123\",\"direction\":\"outgoing\",\"message_id\":\"5817a64332f" \
    "44_4ec93ff59e79d154565eb@app34.mail\",\"to\":\"test@example.com\",\"from\":\"sales@aweso" \
    "meapp.com\",\"subject\":\"Welcome to AwesomeApp\",\"timestamp\":1477945177.12994,\"spam_" \
    "status\":\"NotSpam\",\"tag\":\"welcome\"}},\"uuid\":\"820b47a4-4dfd-42e4-ae6a-1e5bed5a33" \
    "fd\"}"

#define POSTAL_SIG_SHA1                                                                        \
    "xRgls1LzmnxuBmWYyrKKqFg9L+/Ipr7L16UVjlSo9Wk3G6+vS2nMGs0w2gRotBiiPrTEMn6d5B6BgNehZCXT6Ixn" \
    "pOQA/hel/m4hAfdkoPWK/Sq7g09CwyO+EijwjWo6+PB9Ku/nnXV4EPYvIk717HHDyxp8ouEj0+DJ9bQflUk="
#define POSTAL_SIG_SHA256                                                                      \
    "YgRp/sbBN2LLa2/CoHOEMqWLDA0bYzowpJTKCLbgUGWgz4Vvn0+kvjyuB29QQ4n8EyXjFYE+BdAuCpugQx5+gMcq" \
    "MbK8CaqS31Yphz5KnYzmpK8zzJ9hDPokeHLCf5m5HZ9CBTkufncb8zLAUdk6bmGcpXpAKXl7KgWixg/StqM="

/* The envelope timestamp of POSTAL_BODY (1477945177.12994 s), in ms. */
#define POSTAL_BODY_TS_MS 1477945177130LL

#define POSTAL_KEY_SPKI_PEM                                              \
    "-----BEGIN PUBLIC KEY-----\n"                                       \
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDWt+8XMJEoeOd5DW0ETcj7oklU\n" \
    "iyd39h71ZsBxlZSOSydsb+ft26C/dfJmT/1W38oxhct1iuRN6ETNHNeLtwrysxhp\n" \
    "mSiea/eU8Iv3s4WVgdTJyneTH++yuXwOyEmb1opc7igSRfbFLkeVcYm45rnzbjf/\n" \
    "26UaFwmtZlxPI0LZrQIDAQAB\n"                                         \
    "-----END PUBLIC KEY-----\n"

#define POSTAL_KEY_PKCS1_PEM                                                                       \
    "-----BEGIN RSA PUBLIC KEY-----\n"                                                             \
    "MIGJAoGBANa37xcwkSh453kNbQRNyPuiSVSLJ3f2HvVmwHGVlI5LJ2xv5+3boL91\n"                           \
    "8mZP/VbfyjGFy3WK5E3oRM0c14u3CvKzGGmZKJ5r95Twi/ezhZWB1MnKd5Mf77K5\n"                           \
    "fA7ISZvWilzuKBJF9sUuR5VxibjmufNuN//bpRoXCa1mXE8jQtmtAgMBAAE=\n"                               \
    "-----END RSA PUBLIC KEY-----\n"

/* The p= value of Postal's return-path DKIM record, as its UI shows it. */
#define POSTAL_KEY_BARE_B64                                                                        \
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQDWt+8XMJEoeOd5DW0ETcj7oklUiyd39h71ZsBxlZSOSydsb+ft26C/" \
    "dfJmT/1W38oxhct1iuRN6ETNHNeLtwrysxhpmSiea/eU8Iv3s4WVgdTJyneTH++yuXwOyEmb1opc7igSRfbFLkeVcYm45" \
    "rnzbjf/26UaFwmtZlxPI0LZrQIDAQAB"

#define POSTAL_JWK_N                                                                               \
    "1rfvFzCRKHjneQ1tBE3I-6JJVIsnd_Ye9WbAcZWUjksnbG_n7dugv3XyZk_9Vt_KMYXLdYrkTehEzRzXi7cK8rMYaZkon" \
    "mv3lPCL97OFlYHUycp3kx_vsrl8DshJm9aKXO4oEkX2xS5HlXGJuOa58243_9ulGhcJrWZcTyNC2a0"

#define OTHER_KEY_SPKI_PEM                                                                         \
    "-----BEGIN PUBLIC KEY-----\n"                                                                 \
    "MIGfMA0GCSqGSIb3DQEBAQUAA4GNADCBiQKBgQCXf2ODJt+264787xqiUDHVskLF\n"                           \
    "1Id5+aI0nClAcVCJFZtmle7EOt7wVP9iTg++MWFysdx4ljkveOpcoKYJ+MoRQsxi\n"                           \
    "vZN3c121NiOzT09k+uB+xtDyjtSGvsAYxlzk5s8HCrHuunv66W0FB2NvJXrAggWy\n"                           \
    "ZKSavzQx6Mg9mKVLzwIDAQAB\n"                                                                   \
    "-----END PUBLIC KEY-----\n"

#define OTHER_JWK_N                                                                                \
    "l39jgybftuuO_O8aolAx1bJCxdSHefmiNJwpQHFQiRWbZpXuxDre8FT_Yk4PvjFhcrHceJY5L3jqXKCmCfjKEULMYr2Td" \
    "3NdtTYjs09PZPrgfsbQ8o7Uhr7AGMZc5ObPBwqx7rp7-ultBQdjbyV6wIIFsmSkmr80MejIPZilS88"

/* A 512-bit key: too short to be accepted. */
#define SHORT_KEY_SPKI_PEM                                                                         \
    "-----BEGIN PUBLIC KEY-----\n"                                                                 \
    "MFwwDQYJKoZIhvcNAQEBBQADSwAwSAJBAKv/Ldj4VuuDV6i8Mz+gN8ba3Hwz0KOZ\n"                           \
    "3NYZwyFKANwhUMClTQ2lVl5lrzb5Xb23BntlOfw4w/QiRMgmg51ZHdsCAwEAAQ==\n"                           \
    "-----END PUBLIC KEY-----\n"

#endif
