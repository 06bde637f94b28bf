/* pc_cli_skipped: the files a run leaves out and says so at its end:
 * how many, and the first few names. classify's walk counts the files it
 * skips for their name (not *.png, *.jpg, *.jpeg, *.tif, *.tiff); evaluate lists what a
 * class-folder tree holds besides class folders of crops (loose files at
 * the top, subfolders inside class folders, files with other names), by
 * the same rules as models/pd_dataset's scan. Hidden entries are skipped
 * without a word (as the walks do). Owns copies of the names it keeps. */
#ifndef PC_CLI_SKIPPED_H
#define PC_CLI_SKIPPED_H

#include <stdio.h>

#define PC_CLI_SKIPPED_NAMES 5

/* How the walks name the files they leave out for their name. */
#define PC_CLI_SKIPPED_NOT_IMAGE_ONE "file not named *.png, *.jpg, *.jpeg, *.tif or *.tiff"
#define PC_CLI_SKIPPED_NOT_IMAGE_MANY "files not named *.png, *.jpg, *.jpeg, *.tif or *.tiff"

typedef struct pc_cli_skipped {
  long n;
  int n_names;
  char *names[PC_CLI_SKIPPED_NAMES];
} pc_cli_skipped;

/* Counts one, keeping its name while fewer than PC_CLI_SKIPPED_NAMES are kept. */
void pc_cli_skipped_add(pc_cli_skipped *s, const char *name);
/* "N WHAT (a, b, c, d, e and N-5 more)"; nothing when none. */
void pc_cli_skipped_write(const pc_cli_skipped *s, FILE *f, const char *what_one,
                          const char *what_many);
void pc_cli_skipped_free(pc_cli_skipped *s);

/* What a class-folder tree at root holds that evaluate does not score:
 * files at the top (loose), folders inside class folders (subfolders) and
 * files in class folders not named as images (other). 0, or -1 when root
 * cannot be listed (the dataset scan reports that). */
int pc_cli_skipped_class_tree(const char *root, pc_cli_skipped *loose, pc_cli_skipped *subfolders,
                              pc_cli_skipped *other);

#endif
