/*
 * libFuzzer target for the transcript parsers: the first byte picks the format (auto, speaker,
 * whatsapp, telegram, jsonl), the rest is the transcript. Parsing, choosing the assistant and
 * cutting redacted examples must never crash, leak or read outside the input, and a failed
 * parse must always say why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "transcript.h"

/* Parse, pick the assistant, cut examples; check the invariants */
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	FtTranscript t;
	FtExampleSet set;
	const char *rule = NULL;
	char		err[128];
	int			assistant;

	if (size == 0)
		return 0;
	if (!ft_transcript_parse((const char *) data + 1, size - 1, (FtTranscriptFormat) (data[0] % 5), &t))
	{
		if (t.error[0] == '\0')
			abort();
		ft_transcript_free(&t);
		return 0;
	}
	assistant = ft_transcript_pick_assistant(&t, (data[0] & 0x80) ? "bot" : NULL, &rule);
	if (rule == NULL)
		abort();
	if (assistant >= 0 || t.format == FT_TRANSCRIPT_JSONL)
	{
		if (ft_transcript_examples(&t, assistant, data[0] & 7, (data[0] & 0x40) != 0, &set, err, sizeof(err)))
			ft_example_set_free(&set);
	}
	ft_transcript_free(&t);
	return 0;
}
