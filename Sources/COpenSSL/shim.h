#ifndef DELTAHOOK_COPENSSL_SHIM_H
#define DELTAHOOK_COPENSSL_SHIM_H
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/pem.h>
#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/crypto.h>
#include <openssl/rsa.h>

/* BIO_get_mem_data is a macro over BIO_ctrl. */
static inline long deltahook_bio_get_mem_data(BIO *b, char **pp) { return BIO_get_mem_data(b, pp); }

#endif
