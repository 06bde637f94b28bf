/* pd_link: an intrusive doubly linked list of connections (or anything a
 * server keeps a set of): the owner holds the head pointer, each element
 * embeds a pd_link and is found again with pd_link_owner. Owns nothing and
 * allocates nothing; O(1) push and unlink. Not thread-safe (the loop's). */
#ifndef PD_LINK_H
#define PD_LINK_H

#include <stddef.h>

typedef struct pd_link {
  struct pd_link *prev, *next;
} pd_link;

/* The element that embeds `link` as its `member`. */
#define pd_link_owner(link, type, member) ((type *)(void *)((char *)(link)-offsetof(type, member)))

static inline void pd_link_push(pd_link **head, pd_link *l) {
  l->prev = NULL;
  l->next = *head;
  if (*head) (*head)->prev = l;
  *head = l;
}

static inline void pd_link_unlink(pd_link **head, pd_link *l) {
  if (l->prev)
    l->prev->next = l->next;
  else
    *head = l->next;
  if (l->next) l->next->prev = l->prev;
  l->prev = l->next = NULL;
}

#endif
