/*
 * table.c — aligned plain-text tables of JSON rows (see table.h).
 */
#include "table.h"

#include <string.h>

static const char *cell(json_t *row, const char *name)
{
    const char *v = json_string_value(json_object_get(row, name));
    return v ? v : "-";
}

void cli_print_table(FILE *out, json_t *rows, const char *const *cols)
{
    size_t ncol = 0;
    while (cols[ncol] && ncol < CLI_TABLE_MAX_COLS) ncol++;
    size_t width[CLI_TABLE_MAX_COLS] = {0};
    for (size_t c = 0; c < ncol; c++) width[c] = strlen(cols[c]);
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) {
        for (size_t c = 0; c < ncol; c++) {
            size_t n = strlen(cell(row, cols[c]));
            if (n > width[c]) width[c] = n;
        }
    }
    for (size_t c = 0; c < ncol; c++)
        fprintf(out, "%-*s%s", (int)width[c], cols[c], c + 1 < ncol ? "  " : "\n");
    json_array_foreach(rows, i, row) {
        for (size_t c = 0; c < ncol; c++)
            fprintf(out, "%-*s%s", (int)width[c], cell(row, cols[c]), c + 1 < ncol ? "  " : "\n");
    }
}
