#ifndef DELTAHOOK_CPOSTGRES_SHIM_H
#define DELTAHOOK_CPOSTGRES_SHIM_H
/* libpq, the PostgreSQL C client library. Debian/Ubuntu install the header under /usr/include/postgresql,
   which `pkg-config --cflags libpq` reports; the package's pkgConfig: "libpq" passes that to the compiler. */
#include <libpq-fe.h>

#endif
