// SPDX-License-Identifier: GPL-2.0
/*
 * The "physcap" watchdog pretimeout governor.  Selected per watchdog with
 *   echo physcap > /sys/class/watchdog/watchdogN/pretimeout_governor
 * it hands the pretimeout to the armed captures (physcap_arm.c) instead of
 * relying on user space, which is often what is wedged when a watchdog is
 * about to reset the machine.
 *
 * pretimeout() runs with the watchdog core's spinlock held, IRQs off, and
 * often in hard-irq context (the core's hrtimer pretimeout): it must not
 * sleep or allocate, and does neither.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/printk.h>

#include "physcap.h"
#include "physcap_wdgov.h"

static bool physcap_gov_registered;

static void physcap_pretimeout(struct watchdog_device *wdd)
{
	/* The noop governor's line, so log-watching triggers still see it. */
	printk(KERN_ALERT "watchdog%d: pretimeout event\n", wdd->id);
	physcap_arm_fire(wdd->id);
}

static struct watchdog_governor physcap_governor = {
	.name = "physcap",
	.pretimeout = physcap_pretimeout,
};

int physcap_governor_register(void)
{
	int ret;

	if (!watchdog_register_governor || !watchdog_unregister_governor) {
		pr_info("watchdog core not loaded: no pretimeout governor, ARM unavailable (load watchdog before physcap)\n");
		return 0;
	}
	ret = watchdog_register_governor(&physcap_governor);
	if (ret) {
		pr_warn("cannot register the pretimeout governor: %d\n", ret);
		return ret;
	}
	physcap_gov_registered = true;
	return 0;
}

/*
 * Once this returns no pretimeout() call is running or can start: the
 * core swaps the governor out under the same spinlock it calls it with.
 */
void physcap_governor_unregister(void)
{
	if (!physcap_gov_registered)
		return;
	watchdog_unregister_governor(&physcap_governor);
	physcap_gov_registered = false;
}

bool physcap_governor_registered(void)
{
	return physcap_gov_registered;
}
