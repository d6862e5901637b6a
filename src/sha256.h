/*
 * Streaming SHA-256 (FIPS 180-4), free of PostgreSQL so it can be unit-tested alone.
 * Used to fingerprint dataset files while they are written, without keeping them.
 */
#ifndef FT_SHA256_H
#define FT_SHA256_H

#include <stddef.h>
#include <stdint.h>

typedef struct FtSha256
{
	uint32_t	state[8];
	uint64_t	length;			/* bytes hashed so far */
	unsigned char block[64];
	size_t		used;			/* bytes waiting in block */
} FtSha256;

extern void FtSha256Init(FtSha256 *ctx);
extern void FtSha256Update(FtSha256 *ctx, const void *data, size_t len);
extern void FtSha256Final(FtSha256 *ctx, unsigned char digest[32]);
extern void FtSha256Hex(FtSha256 *ctx, char hex[65]);

#endif
