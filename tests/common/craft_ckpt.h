/* Checkpoints made byte by byte through the format module, for tests that
 * need files the writer refuses to make (shared by the unit and the
 * integration suites). */
#ifndef SV_TESTS_CRAFT_CKPT_H
#define SV_TESTS_CRAFT_CKPT_H

#include <stddef.h>
#include <stdint.h>

/* Writes into the existing empty directory dir a checkpoint (data and
 * MANIFEST, id 1, no compression) of one state "s" with one entry: skey
 * (its first two bytes are the key group, below key_groups) and value. Only
 * the layout is right: skey is not checked against anything. Fails the
 * test on an I/O error. */
struct sv_ckpt_manifest;
struct sv_ckpt_state;

/* Fills m as a MANIFEST for the data image data[0..size) holding the one
 * state *st (filled by the caller; m points to it), key groups
 * 0..key_groups-1, compression c (an enum sv_ckpt_compression). */
void craft_manifest(struct sv_ckpt_manifest *m, struct sv_ckpt_state *st, uint32_t key_groups,
                    const uint8_t *data, size_t size, int c);

void craft_ckpt_one_entry(const char *dir, uint32_t key_groups, const uint8_t *skey, size_t sklen,
                          const uint8_t *value, size_t vlen);

#endif
