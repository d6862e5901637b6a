/* Unit tests of the streaming SHA-256 against FIPS 180-4 / NIST vectors */
#include "sha256.h"
#include "unit.h"

/* Hash a buffer fed in chunks of the given size */
static void
HashChunked(const char *data, size_t len, size_t chunk, char hex[65])
{
	FtSha256	ctx;

	FtSha256Init(&ctx);
	for (size_t off = 0; off < len; off += chunk)
		FtSha256Update(&ctx, data + off, len - off < chunk ? len - off : chunk);
	FtSha256Hex(&ctx, hex);
}

int
main(void)
{
	static const struct
	{
		const char *input;
		const char *digest;
	}			vectors[] = {
		{"", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
		{"abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"},
		{"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
		"248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1"},
		{"abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmnoijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
		"cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1"},
		{"The quick brown fox jumps over the lazy dog",
		"d7a8fbb307d7809469ca9abcb0082e4f8d5651e46d3cdb762d02d0bf37c9e592"},
	};
	char		hex[65];
	char	   *million;

	for (size_t i = 0; i < sizeof(vectors) / sizeof(vectors[0]); i++)
	{
		size_t		len = strlen(vectors[i].input);

		HashChunked(vectors[i].input, len, len ? len : 1, hex);
		IS_STR(hex, vectors[i].digest, "vector %zu in one update", i);
		HashChunked(vectors[i].input, len, 1, hex);
		IS_STR(hex, vectors[i].digest, "vector %zu byte by byte", i);
		HashChunked(vectors[i].input, len, 7, hex);
		IS_STR(hex, vectors[i].digest, "vector %zu in 7-byte chunks", i);
	}

	/* one million 'a': crosses many blocks and every padding boundary case on the way */
	million = malloc(1000000);
	memset(million, 'a', 1000000);
	HashChunked(million, 1000000, 1000000, hex);
	IS_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "a x 1,000,000 in one update");
	HashChunked(million, 1000000, 4093, hex);
	IS_STR(hex, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0", "a x 1,000,000 in odd chunks");
	free(million);

	/* lengths 55, 56 and 64 exercise the one- and two-block padding paths */
	{
		char		buf[64];

		memset(buf, 'a', sizeof(buf));
		HashChunked(buf, 55, 55, hex);
		IS_STR(hex, "9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318", "55 bytes");
		HashChunked(buf, 56, 56, hex);
		IS_STR(hex, "b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a", "56 bytes");
		HashChunked(buf, 64, 64, hex);
		IS_STR(hex, "ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb", "64 bytes");
	}
	return unit_done();
}
