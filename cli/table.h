/*
 * table.h — the CLI's plain-text tables (`mailhook suppressions`, `mailhook events`).
 */
#ifndef MH_CLI_TABLE_H
#define MH_CLI_TABLE_H

#include <jansson.h>
#include <stdio.h>

/*
 * Prints rows (an array of objects) as a table: a header line of the column names, then
 * one line per row, each column padded to its widest value and separated by two spaces.
 * cols is NULL-terminated and names string fields; an absent or non-string field prints
 * as "-". At most CLI_TABLE_MAX_COLS columns are printed.
 */
#define CLI_TABLE_MAX_COLS 16
void cli_print_table(FILE *out, json_t *rows, const char *const *cols);

#endif
