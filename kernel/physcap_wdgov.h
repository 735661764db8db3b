/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The watchdog pretimeout governor API.  The kernel declares it in
 * drivers/watchdog/watchdog_pretimeout.h, which no headers package
 * installs, so it is declared here.  Unchanged from 4.10 up to at least
 * 6.12: struct watchdog_governor is a name and a pretimeout() callback, and
 * both functions are EXPORT_SYMBOL from the watchdog core
 * (drivers/watchdog/watchdog.ko on Debian; see its Module.symvers).
 *
 * Both functions are declared weak.  The module loader leaves a weak
 * symbol it cannot resolve at 0 instead of refusing the module, so
 * physcap.ko still loads with a plain insmod where the watchdog core is
 * not loaded yet; it then runs without the governor (PHYSCAP_FEAT_
 * PRETIMEOUT_GOV clear, ARM refused).  When the core is loaded first (as
 * modprobe does: modinfo shows depends=watchdog), the symbols resolve and
 * the loader pins watchdog.ko for as long as physcap.ko is loaded.
 */
#ifndef _PHYSCAP_WDGOV_H
#define _PHYSCAP_WDGOV_H

#include <linux/compiler.h>
#include <linux/watchdog.h>

#define WATCHDOG_GOV_NAME_MAXLEN	20

struct watchdog_governor {
	const char	name[WATCHDOG_GOV_NAME_MAXLEN];
	/* Called with the core's pretimeout spinlock held, IRQs off. */
	void		(*pretimeout)(struct watchdog_device *wdd);
};

extern int watchdog_register_governor(struct watchdog_governor *gov) __weak;
extern void watchdog_unregister_governor(struct watchdog_governor *gov) __weak;

#endif /* _PHYSCAP_WDGOV_H */
