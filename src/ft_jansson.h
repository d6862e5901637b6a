#ifndef FT_JANSSON_H
#define FT_JANSSON_H

/*
 * jansson, made safe to call from inside a PostgreSQL backend. The postgres executable exports
 * its own SQL function json_object(), and the dynamic linker binds our calls to jansson's
 * json_object() to that one instead (a backend crash). jansson's own internal calls are bound
 * inside libjansson, so building empty objects through json_pack avoids the clash. Include this
 * header instead of <jansson.h> in every file that ends up in the extension.
 */
#include <jansson.h>

#define json_object() json_pack("{}")

#endif
