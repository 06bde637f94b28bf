#include "pd_repo.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* out = a/b; false when it does not fit. */
static bool join(char *out, size_t cap, const char *a, const char *b) {
  int n = snprintf(out, cap, "%s/%s", a, b);
  return n >= 0 && (size_t)n < cap;
}

static bool is_dir(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static bool has_model_yaml(const char *dir) {
  char p[4096];
  return join(p, sizeof p, dir, "model.yaml") && access(p, F_OK) == 0;
}

static bool numeric(const char *s) {
  if (!*s) return false;
  for (; *s; s++)
    if (*s < '0' || *s > '9') return false;
  return true;
}

static int cmp_names(const void *a, const void *b) {
  return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names of the sub-folders of dir (not hidden); NULL on a read error. */
static char **subfolders(const char *dir, int *n, pd_error *err) {
  DIR *d = opendir(dir);
  if (!d) {
    pd_error_set(err, PD_EIO, "model.repository %s: %s", dir, strerror(errno));
    return NULL;
  }
  char **names = NULL;
  int count = 0, cap = 0;
  for (struct dirent *e; (e = readdir(d));) {
    if (e->d_name[0] == '.') continue;
    char p[4096];
    if (!join(p, sizeof p, dir, e->d_name) || !is_dir(p)) continue;
    if (count == cap) {
      cap = cap ? cap * 2 : 16;
      char **nn = realloc(names, (size_t)cap * sizeof *nn);
      if (!nn) break;
      names = nn;
    }
    names[count] = strdup(e->d_name);
    if (names[count]) count++;
  }
  closedir(d);
  if (count) qsort(names, (size_t)count, sizeof *names, cmp_names);
  *n = count;
  if (!names) names = calloc(1, sizeof *names);
  return names;
}

static void free_names(char **names, int n) {
  for (int i = 0; i < n; i++)
    free(names[i]);
  free(names);
}

static pd_repo_entry *add(pd_repo *r, const char *name, const char *version, const char *dir,
                          int max_loaded, pd_error *err) {
  if (r->n >= max_loaded || r->n >= PD_REPO_MAX) {
    pd_error_set(err, PD_ELIMIT,
                 "model.repository: more than model.max_loaded %d model versions (at %s)",
                 max_loaded < PD_REPO_MAX ? max_loaded : PD_REPO_MAX, dir);
    return NULL;
  }
  pd_repo_entry *e = &r->e[r->n++];
  snprintf(e->name, sizeof e->name, "%s", name);
  snprintf(e->version, sizeof e->version, "%s", version);
  memcpy(e->dir, dir, strnlen(dir, sizeof e->dir - 1));
  return e;
}

/* Entries of one model folder: itself, or its numeric versions (latest:
 * the highest number). A folder that is neither is an entry with an error. */
static int scan_model(pd_repo *r, const char *root, const char *name, int max_loaded,
                      pd_error *err) {
  char dir[4096];
  if (!join(dir, sizeof dir, root, name))
    return pd_error_set(err, PD_EINVAL, "model.repository %s: folder name too long", root);
  if (has_model_yaml(dir)) {
    pd_repo_entry *e = add(r, name, "", dir, max_loaded, err);
    if (e) e->latest = true;
    return e ? PD_OK : PD_ELIMIT;
  }
  int n = 0;
  char **vs = subfolders(dir, &n, err);
  if (!vs) return PD_EIO;
  int first = r->n, rc = PD_OK;
  long best = -1;
  for (int i = 0; i < n && rc == PD_OK; i++) {
    if (!numeric(vs[i])) continue;
    char vdir[4096];
    if (!join(vdir, sizeof vdir, dir, vs[i])) continue;
    pd_repo_entry *e = add(r, name, vs[i], vdir, max_loaded, err);
    if (!e)
      rc = PD_ELIMIT;
    else if (strtol(vs[i], NULL, 10) > best)
      best = strtol(vs[i], NULL, 10);
  }
  free_names(vs, n);
  if (rc != PD_OK) return rc;
  if (r->n == first) {
    pd_repo_entry *e = add(r, name, "", dir, max_loaded, err);
    if (!e) return PD_ELIMIT;
    snprintf(e->error, sizeof e->error,
             "%.500s: no model.yaml and no numeric version folders (1/, 2/ ...)", dir);
    e->latest = true;
    return PD_OK;
  }
  for (int i = first; i < r->n; i++)
    r->e[i].latest = strtol(r->e[i].version, NULL, 10) == best;
  return PD_OK;
}

/* The entry of previous loaded from the same folder, unchanged, or NULL. */
static const pd_repo_entry *unchanged(const pd_repo *previous, const pd_repo_entry *e) {
  for (int i = 0; previous && i < previous->n; i++) {
    const pd_repo_entry *o = &previous->e[i];
    /* a model a device error took off its plan gets a new one */
    if (o->served && !strcmp(o->name, e->name) && !strcmp(o->dir, e->dir) &&
        pd_repo_stamp_same(&o->stamp, &e->stamp) &&
        pd_served_device_state(o->served) == PD_DEVICE_OK)
      return o;
  }
  return NULL;
}

static void load_entry(pd_repo_entry *e, const pd_served_options *base, const pd_repo *previous) {
  if (e->error[0]) return;
  pd_served_options o = *base;
  o.dir = e->dir;
  pd_repo_stamp_make(e->dir, &o, &e->stamp);
  const pd_repo_entry *same = unchanged(previous, e);
  if (same) {
    e->served = pd_served_ref(same->served);
    memcpy(e->version, same->version, sizeof e->version);
    memcpy(e->warning, same->warning, sizeof e->warning);
    e->kept = true;
    return;
  }
  pd_error err = {0};
  if (pd_served_load(&o, &e->served, &err) != PD_OK) {
    e->served = NULL;
    snprintf(e->error, sizeof e->error, "%s", err.msg);
    return;
  }
  pd_model *m = &e->served->info;
  if (strcmp(m->name, e->name) != 0)
    snprintf(e->warning, sizeof e->warning,
             "model.yaml of %.100s names it '%.40s': served as '%.40s', its folder's name", e->dir,
             m->name, e->name);
  snprintf(m->name, sizeof m->name, "%s", e->name);
  if (e->version[0])
    snprintf(m->version, sizeof m->version, "%s", e->version);
  else
    snprintf(e->version, sizeof e->version, "%s", m->version);
}

static int choose_default(pd_repo *r, const char *want, pd_error *err) {
  char names[1024];
  pd_repo_names(r, names, sizeof names);
  const char *name = want;
  if (!want || !*want) {
    for (int i = 1; i < r->n; i++)
      if (strcmp(r->e[i].name, r->e[0].name) != 0)
        return pd_error_set(err, PD_EINVAL,
                            "model.default: the repository serves several models (%s): name the "
                            "one requests without a model name get",
                            names);
    name = r->e[0].name;
  }
  for (int i = 0; i < r->n; i++)
    if (r->e[i].latest && strcmp(r->e[i].name, name) == 0) {
      r->default_entry = i;
      return PD_OK;
    }
  return pd_error_set(err, PD_EINVAL, "model.default '%s' is not in the repository (it has: %s)",
                      name, names);
}

int pd_repo_load(const char *dir, const pd_served_options *base, const char *default_name,
                 int max_loaded, const pd_repo *previous, pd_repo **out, pd_error *err) {
  pd_repo *r = calloc(1, sizeof *r);
  if (!r) return pd_error_set(err, PD_ENOMEM, "model.repository: out of memory");
  r->default_entry = -1;
  int n = 0, rc = PD_OK;
  char **names = subfolders(dir, &n, err);
  if (!names) rc = PD_EIO;
  for (int i = 0; i < n && rc == PD_OK; i++)
    rc = scan_model(r, dir, names[i], max_loaded, err);
  if (names) free_names(names, n);
  if (rc == PD_OK && r->n == 0)
    rc = pd_error_set(err, PD_EINVAL, "model.repository %s holds no model folder", dir);
  if (rc == PD_OK) rc = choose_default(r, default_name, err);
  for (int i = 0; i < r->n && rc == PD_OK; i++)
    load_entry(&r->e[i], base, previous);
  if (rc != PD_OK) {
    pd_repo_free(r);
    return rc;
  }
  *out = r;
  return PD_OK;
}

int pd_repo_single(pd_served *s, pd_repo **out, pd_error *err) {
  pd_repo *r = calloc(1, sizeof *r);
  if (!r) {
    pd_served_unref(s);
    return pd_error_set(err, PD_ENOMEM, "model: out of memory");
  }
  pd_repo_entry *e = &r->e[0];
  r->n = 1;
  snprintf(e->name, sizeof e->name, "%s", s->model->name);
  snprintf(e->version, sizeof e->version, "%s", s->model->version);
  snprintf(e->dir, sizeof e->dir, "%s", s->model->dir);
  e->served = s;
  e->latest = true;
  r->default_entry = 0;
  *out = r;
  return PD_OK;
}

void pd_repo_free(pd_repo *r) {
  if (!r) return;
  for (int i = 0; i < r->n; i++)
    pd_served_unref(r->e[i].served);
  free(r);
}

int pd_repo_keep_failed(pd_repo *fresh, const pd_repo *old) {
  int kept = 0;
  for (int i = 0; fresh && old && i < fresh->n; i++) {
    pd_repo_entry *e = &fresh->e[i];
    for (int j = 0; !e->served && j < old->n; j++) {
      const pd_repo_entry *o = &old->e[j];
      if (!o->served || strcmp(o->name, e->name) != 0) continue;
      if (e->version[0] && strcmp(o->version, e->version) != 0) continue;
      e->served = pd_served_ref(o->served);
      snprintf(e->version, sizeof e->version, "%s", o->version);
      char msg[sizeof e->error];
      snprintf(msg, sizeof msg, "reload failed, the previous load still serves: %s", e->error);
      memcpy(e->error, msg, sizeof e->error);
      kept++;
    }
  }
  return kept;
}

void pd_repo_names(const pd_repo *r, char *out, size_t cap) {
  size_t o = 0;
  out[0] = '\0';
  for (int i = 0; i < r->n && o < cap; i++) {
    if (i > 0 && strcmp(r->e[i].name, r->e[i - 1].name) == 0) continue;
    int k = snprintf(out + o, cap - o, "%s'%s'", o ? ", " : "", r->e[i].name);
    if (k < 0) break;
    o += (size_t)k;
  }
}

static void versions_of(const pd_repo *r, const char *name, char *out, size_t cap) {
  size_t o = 0;
  out[0] = '\0';
  for (int i = 0; i < r->n && o < cap; i++) {
    if (strcmp(r->e[i].name, name) != 0) continue;
    int k = snprintf(out + o, cap - o, "%s'%s'", o ? ", " : "", r->e[i].version);
    if (k < 0) break;
    o += (size_t)k;
  }
}

const pd_repo_entry *pd_repo_find(const pd_repo *r, const char *model, const char *version,
                                  pd_status *code, char *why, size_t cap) {
  *code = PD_STATUS_NOT_FOUND;
  if (!r || r->n == 0) {
    *code = PD_STATUS_UNAVAILABLE;
    snprintf(why, cap, "no model is loaded");
    return NULL;
  }
  char name[64];
  snprintf(name, sizeof name, "%s", model ? model : "");
  char *colon = strrchr(name, ':');
  const char *ver = version && *version ? version : colon ? colon + 1 : "";
  if (colon) *colon = '\0';
  if (!name[0]) {
    if (r->default_entry < 0) {
      snprintf(why, cap, "no default model: name one");
      return NULL;
    }
    snprintf(name, sizeof name, "%s", r->e[r->default_entry].name);
  }
  bool known = false;
  for (int i = 0; i < r->n; i++) {
    const pd_repo_entry *e = &r->e[i];
    if (strcmp(e->name, name) != 0) continue;
    known = true;
    if (*ver ? strcmp(e->version, ver) == 0 : e->latest) return e;
  }
  char list[1024];
  if (known) {
    versions_of(r, name, list, sizeof list);
    snprintf(why, cap, "unknown model '%s' version '%.60s': its versions are %s", name, ver, list);
  } else {
    pd_repo_names(r, list, sizeof list);
    snprintf(why, cap, "unknown model '%.60s': this daemon serves %s", name, list);
  }
  return NULL;
}

pd_served *pd_repo_served(const pd_repo *r, const char *model, const char *version, pd_status *code,
                          char *why, size_t cap) {
  const pd_repo_entry *e = pd_repo_find(r, model, version, code, why, cap);
  if (e && !e->served && e->unloaded) {
    *code = PD_STATUS_UNAVAILABLE;
    snprintf(why, cap, "model '%s'%s%s is unloaded (model control): load it again to serve it",
             e->name, e->version[0] ? " version " : "", e->version);
    return NULL;
  }
  if (e && !e->served) {
    *code = PD_STATUS_UNAVAILABLE;
    snprintf(why, cap, "model '%s'%s%s did not load: %s", e->name, e->version[0] ? " version " : "",
             e->version, e->error);
    return NULL;
  }
  return e ? e->served : NULL;
}

pd_served *pd_repo_default(const pd_repo *r) {
  return r && r->default_entry >= 0 ? r->e[r->default_entry].served : NULL;
}

/* ---- run-time changes ---- */

bool pd_repo_loaded(const pd_repo *r, const char *name) {
  for (int i = 0; r && i < r->n; i++)
    if (r->e[i].served && !strcmp(r->e[i].name, name)) return true;
  return false;
}

int pd_repo_count_loaded(const pd_repo *r) {
  int n = 0;
  for (int i = 0; r && i < r->n; i++)
    n += r->e[i].served != NULL;
  return n;
}

static bool valid_name(const char *name) {
  size_t n = strlen(name);
  return n > 0 && n < sizeof((pd_repo_entry *)0)->name && name[0] != '.' && !strchr(name, '/');
}

/* Copies e into r (its model a new reference). */
static void copy_entry(pd_repo *r, const pd_repo_entry *e) {
  pd_repo_entry *c = &r->e[r->n++];
  *c = *e;
  pd_served_ref(c->served);
}

/* now without `name`'s entries, with `fresh`'s in their place (in name
 * order); the default follows its name. */
static pd_repo *merged(const pd_repo *now, const char *name, const pd_repo *fresh) {
  pd_repo *r = calloc(1, sizeof *r);
  if (!r) return NULL;
  r->default_entry = -1;
  const char *def = now->default_entry >= 0 ? now->e[now->default_entry].name : NULL;
  bool placed = false;
  for (int i = 0; i <= now->n; i++) {
    const pd_repo_entry *e = i < now->n ? &now->e[i] : NULL;
    if (!placed && (!e || strcmp(e->name, name) >= 0)) {
      for (int j = 0; j < fresh->n; j++)
        copy_entry(r, &fresh->e[j]);
      placed = true;
    }
    if (e && strcmp(e->name, name) != 0) copy_entry(r, e);
  }
  for (int i = 0; def && i < r->n; i++)
    if (r->e[i].latest && !strcmp(r->e[i].name, def)) r->default_entry = i;
  return r;
}

/* A refusal: its status and message. */
#define FAIL(c, rc, ...) (set_code(code, (c)), pd_error_set(err, (rc), __VA_ARGS__))
static int set_code(pd_status *code, pd_status c) {
  *code = c;
  return 0;
}

/* now's entries of name, each unloaded. */
static int unload(const pd_repo *now, const char *name, pd_repo **out) {
  pd_repo *fresh = calloc(1, sizeof *fresh);
  if (!fresh) return PD_ENOMEM;
  for (int i = 0; i < now->n; i++) {
    if (strcmp(now->e[i].name, name) != 0) continue;
    pd_repo_entry *e = &fresh->e[fresh->n++];
    *e = now->e[i];
    e->served = NULL;
    e->unloaded = true;
    e->kept = false;
    snprintf(e->error, sizeof e->error, "unloaded (model control); load it again to serve it");
  }
  *out = merged(now, name, fresh);
  free(fresh);
  return *out ? PD_OK : PD_ENOMEM;
}

int pd_repo_change(const pd_repo *now, const char *root, pd_repo_op op, const char *name,
                   const pd_served_options *base, int max_loaded, pd_repo **out, pd_status *code,
                   pd_error *err) {
  *out = NULL;
  *code = PD_STATUS_OK;
  if (!valid_name(name))
    return FAIL(PD_STATUS_INVALID_ARGUMENT, PD_EINVAL,
                "model name '%.80s'%s: not a folder name of model.repository", name,
                *name ? "" : " (empty)");
  if (!now || !root || !*root)
    return FAIL(PD_STATUS_FAILED_PRECONDITION, PD_EINVAL,
                "model control needs model.repository (model.dir is a repository of one)");
  char names[1024];
  pd_repo_names(now, names, sizeof names);
  const bool loaded = pd_repo_loaded(now, name);
  if (op == PD_REPO_UNLOAD) {
    if (!loaded)
      return FAIL(PD_STATUS_NOT_FOUND, PD_EINVAL,
                  "model '%s' is not loaded (the repository's models: %s)", name, names);
    if (now->default_entry >= 0 && !strcmp(now->e[now->default_entry].name, name))
      return FAIL(PD_STATUS_FAILED_PRECONDITION, PD_EINVAL,
                  "model '%s' is model.default (what requests without a model name get): set "
                  "another model.default and reload (SIGHUP) before unloading it",
                  name);
    int rc = unload(now, name, out);
    if (rc != PD_OK) *code = PD_STATUS_RESOURCE_EXHAUSTED;
    return rc == PD_OK ? PD_OK : pd_error_set(err, rc, "model control: out of memory");
  }
  if (op != PD_REPO_LOAD && op != PD_REPO_RELOAD)
    return FAIL(PD_STATUS_INVALID_ARGUMENT, PD_EINVAL,
                "model control of '%s': no operation (load, unload or reload)", name);
  if (op == PD_REPO_LOAD && loaded)
    return FAIL(PD_STATUS_ALREADY_EXISTS, PD_EINVAL,
                "model '%s' is already loaded: reload it to load its folder again", name);
  if (op == PD_REPO_RELOAD && !loaded)
    return FAIL(PD_STATUS_NOT_FOUND, PD_EINVAL,
                "model '%s' is not loaded (the repository's models: %s): load it", name, names);
  char dir[4096];
  if (!join(dir, sizeof dir, root, name) || !is_dir(dir))
    return FAIL(PD_STATUS_NOT_FOUND, PD_EINVAL, "model.repository %.300s has no folder '%s'", root,
                name);
  pd_repo *fresh = calloc(1, sizeof *fresh);
  if (!fresh) return FAIL(PD_STATUS_RESOURCE_EXHAUSTED, PD_ENOMEM, "model control: out of memory");
  fresh->default_entry = -1;
  int rc = scan_model(fresh, root, name, PD_REPO_MAX, err);
  int others = 0, entries = 0;
  for (int i = 0; i < now->n; i++)
    if (strcmp(now->e[i].name, name) != 0) {
      others += now->e[i].served != NULL;
      entries++;
    }
  if (rc == PD_OK && (others + fresh->n > max_loaded || entries + fresh->n > PD_REPO_MAX)) {
    *code = PD_STATUS_RESOURCE_EXHAUSTED;
    rc = pd_error_set(err, PD_ELIMIT,
                      "model.max_loaded %d: %s '%s' (%d versions) would make %d model versions "
                      "loaded; unload one first",
                      max_loaded < PD_REPO_MAX ? max_loaded : PD_REPO_MAX,
                      op == PD_REPO_LOAD ? "loading" : "reloading", name, fresh->n,
                      others + fresh->n);
  } else if (rc != PD_OK) {
    *code = PD_STATUS_INVALID_ARGUMENT;
  }
  for (int i = 0; i < fresh->n && rc == PD_OK; i++) {
    pd_repo_entry *e = &fresh->e[i];
    load_entry(e, base, NULL);
    if (!e->served) {
      *code = PD_STATUS_UNAVAILABLE;
      rc = pd_error_set(err, PD_EINVAL, "model '%s'%s%s did not load, nothing changed: %s", e->name,
                        e->version[0] ? " version " : "", e->version, e->error);
    }
  }
  if (rc == PD_OK) {
    *out = merged(now, name, fresh);
    if (!*out) {
      *code = PD_STATUS_RESOURCE_EXHAUSTED;
      rc = pd_error_set(err, PD_ENOMEM, "model control: out of memory");
    }
  }
  pd_repo_free(fresh);
  return rc;
}
