/*
 * Facts for ft_doctor() that only C can see: the allow-list verdict on a provider URL (the
 * setting is superuser-only) and whether a key is present in the server's environment.
 */
#include "postgres.h"

#include <stdlib.h>

#include "fmgr.h"
#include "http.h"
#include "http_policy.h"
#include "settings.h"
#include "utils/builtins.h"

PG_FUNCTION_INFO_V1(ft_provider_host_check);
PG_FUNCTION_INFO_V1(ft_env_key_present);

/*
 * NULL when the worker may call this URL, else why not
 */
Datum
ft_provider_host_check(PG_FUNCTION_ARGS)
{
	char	   *url = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char		host[256];
	char		why[512];
	long		port;

	if (!ft_url_host(url, host, sizeof(host), &port))
		PG_RETURN_TEXT_P(cstring_to_text("the base URL cannot be parsed"));
	if (ft_host_allowed(ft_allowed_provider_hosts, host, port, why, sizeof(why)))
		PG_RETURN_NULL();
	PG_RETURN_TEXT_P(cstring_to_text(why));
}

/*
 * Is the provider's key variable set in the server environment (the worker's too)?
 */
Datum
ft_env_key_present(PG_FUNCTION_ARGS)
{
	char	   *provider = text_to_cstring(PG_GETARG_TEXT_PP(0));
	char	   *kind = text_to_cstring(PG_GETARG_TEXT_PP(1));
	char	   *name = psprintf("PG_FINETUNE_%s_API_KEY", provider);

	for (char *c = name; *c; c++)
		*c = (*c == '-') ? '_' : pg_toupper((unsigned char) *c);
	PG_RETURN_BOOL(getenv(name) != NULL || (strcmp(kind, "openai") == 0 && getenv("OPENAI_API_KEY") != NULL));
}
