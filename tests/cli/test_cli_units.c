/* test_cli_units: the CLI's text rules, without a daemon:
 *  - pc_cli_path: normalisation, common folders, and the object id rule,
 *    undone here by a decoder written from the documented rule, on 200000
 *    random paths over the bytes that matter ('_', '/', '%', UTF-8 and
 *    invalid bytes): every id decodes back to its path, so no two collide;
 *  - pc_cli_strmap: adds, finds, refuses a second add, grows;
 *  - pc_cli_utf8 and pc_cli_json: invalid bytes become U+FFFD, or %XX in
 *    pc_cli_json_bytes;
 *  - pc_cli_meta: types inferred and given, quoted CSV, folder rows, and
 *    each error naming FILE:LINE;
 *  - pc_cli_ecotaxa: label columns that sanitise to the same name are made
 *    unique, a metadata column that takes a written name is refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pc_cli_ecotaxa.h"
#include "pc_cli_json.h"
#include "pc_cli_meta.h"
#include "pc_cli_path.h"
#include "pc_cli_strmap.h"
#include "pc_cli_utf8.h"

static int checks, failures;

#define CHECK(cond, ...)                                                                           \
  do {                                                                                             \
    checks++;                                                                                      \
    if (!(cond)) {                                                                                 \
      failures++;                                                                                  \
      fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);                                         \
      fprintf(stderr, __VA_ARGS__);                                                                \
      fputc('\n', stderr);                                                                         \
    }                                                                                              \
  } while (0)

/* The documented rule undone: "__" is '/', %XX a byte, anything else itself.
 * NULL when id is not something the rule can write. */
static char *decode_id(const char *id) {
  size_t n = strlen(id);
  char *out = malloc(n + 1);
  size_t o = 0;
  for (size_t i = 0; i < n;) {
    if (id[i] == '_') {
      size_t run = 0;
      while (id[i + run] == '_')
        run++;
      if (run != 1 && run % 2 != 0) {
        free(out);
        return NULL;
      }
      for (size_t k = 0; k < (run == 1 ? 1 : run / 2); k++)
        out[o++] = run == 1 ? '_' : '/';
      i += run;
    } else if (id[i] == '%') {
      unsigned v;
      if (sscanf(id + i + 1, "%2X", &v) != 1) {
        free(out);
        return NULL;
      }
      out[o++] = (char)v;
      i += 3;
    } else {
      out[o++] = id[i++];
    }
  }
  out[o] = '\0';
  return out;
}

static void test_paths(void) {
  static const char *const norm[][3] = {{"a/./b//c/", "/x/y", "/x/y/a/b/c"},
                                        {"../../../a", "/x/y", "/a"},
                                        {"/", "/x", "/"},
                                        {".", "/", "/"},
                                        {"/p/../q/", "/x", "/q"}};
  for (size_t i = 0; i < sizeof norm / sizeof norm[0]; i++) {
    char *p = pc_cli_path_abs(norm[i][0], norm[i][1]);
    CHECK(p && !strcmp(p, norm[i][2]), "abs(%s, %s) = %s, want %s", norm[i][0], norm[i][1],
          p ? p : "-", norm[i][2]);
    free(p);
  }
  char a[64] = "/data/c1/s1", b[64] = "/data/c1", c[64] = "/data";
  pc_cli_path_common(a, "/data/c1/s2");
  pc_cli_path_common(b, "/data/c10");
  pc_cli_path_common(c, "/other");
  CHECK(!strcmp(a, "/data/c1") && !strcmp(b, "/data") && !strcmp(c, "/"), "common: %s %s %s", a, b,
        c);
  static const char *const ids[][2] = {{"/r/station1/img_0001.jpg", "station1__img_0001.jpg"},
                                       {"/r/station2/img_0001.jpg", "station2__img_0001.jpg"},
                                       {"/r/station2/img_0001.png", "station2__img_0001.png"},
                                       {"/r/a_/b", "a%5F__b"},
                                       {"/r/a/_b", "a__%5Fb"},
                                       {"/r/a__b", "a%5F%5Fb"},
                                       {"/o/x.jpg", "__o__x.jpg"},
                                       {"/r/50%.jpg", "50%25.jpg"},
                                       {"/r/caf\xe9.jpg", "caf%E9.jpg"},
                                       {"/r/tab\there", "tab%09here"},
                                       {"/r/Zo\xc3\xa9_1.png", "Zo\xc3\xa9_1.png"}};
  for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
    char *id = pc_cli_path_object_id(ids[i][0], "/r");
    CHECK(id && !strcmp(id, ids[i][1]), "id(%s) = %s, want %s", ids[i][0], id ? id : "-",
          ids[i][1]);
    CHECK(id && pc_cli_utf8_valid(id), "id(%s) is UTF-8", ids[i][0]);
    free(id);
  }
  /* random paths below /r (and a few outside): each id decodes back to its path */
  static const char *const atoms[] = {"a", "_", "/", "%", "\xc3\xa9", "\xe9", ".", "b"};
  unsigned seed = 7;
  int bad = 0;
  for (int t = 0; t < 200000 && bad < 5; t++) {
    char rel[64] = "";
    int len = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 8;
    for (int k = 0; k < len; k++)
      strcat(rel, atoms[((seed = seed * 1103515245u + 12345u) >> 16) % 8]);
    const int outside = ((seed = seed * 1103515245u + 12345u) >> 16) % 10 == 0;
    char *abs = pc_cli_path_abs(rel, outside ? "/elsewhere" : "/r");
    char *id = pc_cli_path_object_id(abs, "/r");
    char *back = id ? decode_id(id) : NULL;
    const char *want = pc_cli_path_below(abs, "/r");
    want = want ? want : abs;
    if (!back || strcmp(back, want) != 0 || !pc_cli_utf8_valid(id)) {
      bad++;
      CHECK(0, "id of %s is %s, which decodes to %s", abs ? abs : "-", id ? id : "-",
            back ? back : "(nothing)");
    }
    free(abs);
    free(id);
    free(back);
  }
  CHECK(bad == 0, "every random id decodes back to its path");
}

static void test_strmap(void) {
  pc_cli_strmap m = {0};
  long v = 0;
  CHECK(!pc_cli_strmap_get(&m, "x", &v), "empty map finds nothing");
  char key[32];
  int ok = 1;
  for (long i = 0; i < 10000; i++) {
    snprintf(key, sizeof key, "k%ld", i);
    ok &= pc_cli_strmap_add(&m, key, i, NULL) == 1;
  }
  CHECK(ok && m.n == 10000, "10000 adds");
  CHECK(pc_cli_strmap_add(&m, "k42", 7, &v) == 0 && v == 42, "a second add is refused, old value");
  for (long i = 0; i < 10000; i += 999) {
    snprintf(key, sizeof key, "k%ld", i);
    CHECK(pc_cli_strmap_get(&m, key, &v) && v == i, "find %s", key);
  }
  pc_cli_strmap_free(&m);
}

static char *json_of(void (*fn)(FILE *, const char *), const char *s) {
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  fn(f, s);
  fclose(f);
  return buf;
}

static void test_json(void) {
  char *a = json_of(pc_cli_json_string, "caf\xe9 \xc3\xa9\t\"");
  CHECK(!strcmp(a, "\"caf\\ufffd \xc3\xa9\\t\\\"\""), "json string: %s", a);
  char *b = json_of(pc_cli_json_bytes, "caf\xe9 50%");
  CHECK(!strcmp(b, "\"caf%E9 50%25\""), "json bytes: %s", b);
  CHECK(!pc_cli_utf8_valid("\xed\xa0\x80") && !pc_cli_utf8_valid("\xc0\xaf") &&
            pc_cli_utf8_valid("\xf0\x9f\x90\x99"),
        "surrogates and overlong forms are not UTF-8, U+1F419 is");
  free(a);
  free(b);
}

static const char *write_file(const char *name, const char *text) {
  FILE *f = fopen(name, "w");
  fputs(text, f);
  fclose(f);
  return name;
}

static void test_meta(const char *dir) {
  char cwd[4096];
  CHECK(getcwd(cwd, sizeof cwd) != NULL, "cwd");
  (void)dir;
  pc_cli_meta m;
  pc_cli_error err = {.msg = ""};
  const char *f1 = write_file("m1.csv", "\xEF\xBB\xBFPath, Object_Lat ,object_note,sample_id\n"
                                        "s1,1.5,\"two\nlines\",a\n");
  CHECK(pc_cli_meta_load(f1, cwd, &m, &err) == PC_CLI_EXIT_USAGE &&
            strstr(err.msg, "m1.csv:2: column object_note") && strstr(err.msg, "line break"),
        "a line break in a value: %s", err.msg);
  const char *f2 = write_file("m2.csv", "\xEF\xBB\xBFPath, Object_Lat ,object_note,sample_id\n"
                                        "s1,1.5,\"a, \"\"b\"\"\",a\n"
                                        "s1/x.png,-2,,b\n");
  int rc = pc_cli_meta_load(f2, cwd, &m, &err);
  CHECK(rc == PC_CLI_EXIT_OK, "m2 loads: %s", err.msg);
  if (rc == PC_CLI_EXIT_OK) {
    CHECK(m.n_cols == 3 && !strcmp(m.names[0], "object_lat") && m.types[0] == 'f' &&
              m.types[1] == 't' && m.types[2] == 't',
          "names lower case and trimmed, types inferred: %s %s", m.names[0], m.types);
    char *x = pc_cli_path_abs("s1/x.png", cwd), *y = pc_cli_path_abs("s1/deep/y.png", cwd),
         *z = pc_cli_path_abs("s2/z.png", cwd);
    long rx = pc_cli_meta_find(&m, x), ry = pc_cli_meta_find(&m, y), rz = pc_cli_meta_find(&m, z);
    CHECK(rx == 1 && ry == 0 && rz == -1, "own row, folder row, none: %ld %ld %ld", rx, ry, rz);
    CHECK(ry == 0 && !strcmp(pc_cli_meta_cell(&m, ry, 1), "a, \"b\""), "quoted CSV value");
    free(x);
    free(y);
    free(z);
    pc_cli_meta_free(&m);
  }
  static const char *const bad[][2] = {
      {"path\tobject_x\n[t]\t[f]\ns\tdeep\n", "m3.tsv:3:"},
      {"path\tobject_lon\ns\t181\n", "m3.tsv:2:"},
      {"path\tobject_x\n\"s\tq\n", "m3.tsv:2: a quoted field"},
      {"path\tobject_X-Y\ns\t1\n", "m3.tsv:1: column 'object_x-y'"},
      {"path\tobject_x\tobject_x\ns\t1\t2\n", "appears twice"},
      {"path\tprocess_a\ns\t1\n", "process_id"},
      {"path\tobject_p_a\ns\t1\n", "prefix is taken"},
      {"path\tobject_a\n", "no rows"},
      {"path\n", "no metadata columns"}};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
    err.msg[0] = '\0';
    rc = pc_cli_meta_load(write_file("m3.tsv", bad[i][0]), cwd, &m, &err);
    CHECK(rc == PC_CLI_EXIT_USAGE && strstr(err.msg, bad[i][1]), "%s: %s (want %s)", bad[i][0],
          err.msg, bad[i][1]);
  }
}

static void test_label_columns(void) {
  static const char *const labels[] = {"Copepod Calanoid", "copepod_calanoid", "copepod-calanoid",
                                       "copepod_calanoid_1", "Zo\xc3\xa9"};
  char *args[] = {"."};
  pc_cli_ecotaxa_options o = {.args = args, .n_args = 1};
  pc_cli_ecotaxa *e = NULL;
  pc_cli_error err = {.msg = ""};
  CHECK(pc_cli_ecotaxa_open(&o, &e, &err) == PC_CLI_EXIT_OK, "open: %s", err.msg);
  if (!e) return;
  CHECK(pc_cli_ecotaxa_columns(e, 2, true, 5, labels, &err) == PC_CLI_EXIT_OK, "columns: %s",
        err.msg);
  char *buf = NULL;
  size_t n = 0;
  FILE *f = open_memstream(&buf, &n);
  pc_cli_ecotaxa_header(e, f);
  fclose(f);
  const char *want = "\xEF\xBB\xBFimg_file_name\tobject_id\tobject_annotation_category\t"
                     "object_annotation_status\tobject_width\tobject_height\tobject_score\t"
                     "object_category_2\tobject_score_2\tobject_p_copepod_calanoid\t"
                     "object_p_copepod_calanoid_1\tobject_p_copepod_calanoid_2\t"
                     "object_p_copepod_calanoid_1_3\tobject_p_zo__\n"
                     "[t]\t[t]\t[t]\t[t]\t[f]\t[f]\t[f]\t[t]\t[f]\t[f]\t[f]\t[f]\t[f]\t[f]\n";
  CHECK(!strcmp(buf, want), "label columns made unique:\n%s\nwant\n%s", buf, want);
  free(buf);
  pc_cli_ecotaxa_free(e);
  /* a metadata column named as one of ours is refused (the prefix check, then the names) */
  write_file("m4.tsv", "path\tobject_category_9\ns\t1\n");
  pc_cli_ecotaxa_options om = {.args = args, .n_args = 1, .metadata = "m4.tsv"};
  CHECK(pc_cli_ecotaxa_open(&om, &e, &err) == PC_CLI_EXIT_USAGE &&
            strstr(err.msg, "object_category_9"),
        "metadata column with a name classify writes: %s", err.msg);
}

int main(void) {
  char tmpl[] = "/tmp/pc-cli-units-XXXXXX";
  char *dir = mkdtemp(tmpl);
  if (!dir || chdir(dir) != 0) {
    perror("test dir");
    return 1;
  }
  test_paths();
  test_strmap();
  test_json();
  test_meta(dir);
  test_label_columns();
  const char *files[] = {"m1.csv", "m2.csv", "m3.tsv", "m4.tsv"};
  for (size_t i = 0; i < sizeof files / sizeof files[0]; i++)
    unlink(files[i]);
  if (chdir("/") == 0) rmdir(dir);
  printf("cli_units: %d checks, %d failed\n", checks, failures);
  return failures != 0;
}
