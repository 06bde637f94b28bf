/* pc_cli_path: paths handled as text, without touching the file system:
 * the absolute, normalised form of a path (what EcoTaxa's object ids and
 * the --metadata keys are derived from and matched by), the common folder
 * of several, whether one lies under another, and the object id rule.
 * Owns nothing; returned strings are malloc'ed. */
#ifndef PC_CLI_PATH_H
#define PC_CLI_PATH_H

/* path made absolute against base (an absolute folder) when relative, with
 * "." and empty components dropped and ".." taking away the one before
 * ("/.." stays "/"): "/a/b", "/" for the root. NULL when out of memory. */
char *pc_cli_path_abs(const char *path, const char *base);
/* Cuts a normalised absolute path to its folder, in place ("/a/b" -> "/a",
 * "/a" -> "/", "/" stays). */
void pc_cli_path_parent(char *abs);
/* Shortens the normalised absolute folder a, in place, to the deepest
 * folder that holds both it and b. */
void pc_cli_path_common(char *a, const char *b);
/* When abs lies strictly below root (both normalised absolute): the rest of
 * abs after root and its '/' ("/r/x/y" under "/r" -> "x/y"), else NULL. */
const char *pc_cli_path_below(const char *abs, const char *root);

/* The object id of a file at abs for ids rooted at root: its path below
 * root (or abs itself, leading '/' included, when it is not below), with
 * each '/' written "__", and written as %XX: '%', a '_' next to another
 * '_' or to a '/', control bytes, and bytes that are not valid UTF-8.
 * Distinct paths give distinct ids (the rule can be undone). */
char *pc_cli_path_object_id(const char *abs, const char *root);

#endif
