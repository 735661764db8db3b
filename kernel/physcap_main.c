// SPDX-License-Identifier: GPL-2.0
/*
 * physcap: write physical memory to an O_DIRECT file or a raw block device
 * straight from the pages, with no copy by the CPU.
 *
 * /dev/physcap: open, then PHYSCAP_IOC_INFO, PHYSCAP_IOC_WRITE, or mmap
 * (read-only, the offset is the physical address); PHYSCAP_IOC_ARM,
 * DISARM and ARM_STATUS for captures the module makes itself on a watchdog
 * pretimeout, and read(2)/poll(2) for their events; PHYSCAP_IOC_KERNEL_MAP
 * for the virtual addresses a dump's program headers carry.  The ABI is in
 * physcap_uapi.h; docs/ioctl-abi.md describes it.
 */
#define pr_fmt(fmt) KBUILD_MODNAME ": " fmt

#include <linux/build_bug.h>
#include <linux/capability.h>
#include <linux/device.h>
#include <linux/fs.h>
#include <linux/miscdevice.h>
#include <linux/mm.h>
#include <linux/module.h>
#include <linux/mutex.h>
#include <linux/poll.h>
#include <linux/sched/task.h>
#include <linux/security.h>
#include <linux/slab.h>
#include <linux/uaccess.h>

#include "physcap.h"
#include "physcap_compat.h"

static_assert(sizeof(struct physcap_info) == PHYSCAP_INFO_SIZE);
static_assert(sizeof(struct physcap_kernel_map) == PHYSCAP_KERNEL_MAP_SIZE);
static_assert(sizeof(struct physcap_write) == PHYSCAP_WRITE_SIZE);

struct physcap_stats physcap_stats;

/* An open /dev/physcap: its place in the event ring, and its arms. */
struct physcap_file {
	struct physcap_client client;
	struct mutex read_lock;		/* one reader of event_pos at a time */
};

/* Same gate as /dev/mem: raw I/O capability, and no kernel lockdown. */
static int physcap_open(struct inode *inode, struct file *file)
{
	struct physcap_file *pf;
	int ret;

	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;
	ret = security_locked_down(LOCKDOWN_DEV_MEM);
	if (ret)
		return ret;

	pf = kzalloc(sizeof(*pf), GFP_KERNEL);
	if (!pf)
		return -ENOMEM;
	mutex_init(&pf->read_lock);
	/* A reader started after a fire still sees it. */
	pf->client.event_pos = physcap_event_oldest();
	file->private_data = pf;
	/*
	 * mmap offsets are physical addresses.  Without this, a character
	 * device's mappings stop at ULONG_MAX (file_mmap_ok()), so a 32-bit
	 * kernel with 36-bit physical addresses could not map memory above
	 * 4 GiB.  /dev/mem does the same.
	 */
	physcap_file_unsigned_offset(file);
	return 0;
}

static int physcap_release(struct inode *inode, struct file *file)
{
	struct physcap_file *pf = file->private_data;

	physcap_arm_release_client(&pf->client);
	mutex_destroy(&pf->read_lock);
	kfree(pf);
	return 0;
}

static ssize_t physcap_read(struct file *file, char __user *buf, size_t count,
			    loff_t *ppos)
{
	struct physcap_file *pf = file->private_data;
	ssize_t ret;

	if (mutex_lock_interruptible(&pf->read_lock))
		return -ERESTARTSYS;
	ret = physcap_event_read(&pf->client.event_pos, buf, count,
				 file->f_flags & O_NONBLOCK);
	mutex_unlock(&pf->read_lock);
	return ret;
}

static __poll_t physcap_poll(struct file *file, poll_table *wait)
{
	struct physcap_file *pf = file->private_data;

	return physcap_event_poll(file, READ_ONCE(pf->client.event_pos), wait);
}

static long physcap_ioctl_info(void __user *arg)
{
	struct physcap_info info = {
		.abi_version = PHYSCAP_ABI_VERSION,
		.page_size = PAGE_SIZE,
		.features = PHYSCAP_FEAT_ZERO_COPY | PHYSCAP_FEAT_BOUNCE |
			    PHYSCAP_FEAT_MMIO | PHYSCAP_FEAT_MMAP |
			    PHYSCAP_FEAT_HWPOISON | PHYSCAP_FEAT_BLOCKDEV |
			    (physcap_adopt_enabled() ? PHYSCAP_FEAT_ADOPT : 0) |
			    PHYSCAP_FEAT_ARM | PHYSCAP_FEAT_KERNEL_MAP |
			    PHYSCAP_FEAT_ARM_STAMP |
			    (physcap_governor_registered() ?
			     PHYSCAP_FEAT_PRETIMEOUT_GOV : 0),
		.max_length = physcap_phys_limit(),
		.phys_limit = physcap_phys_limit(),
		.batch_pages = PHYSCAP_BATCH_PAGES,
	};

	if (copy_to_user(arg, &info, sizeof(info)))
		return -EFAULT;
	return 0;
}

/*
 * The direct map and the kernel image's mapping, for the program headers
 * of a dump.  The image offset comes from a symbol the image exports
 * (init_task, in the kernel's data): __pa_symbol() is how the kernel
 * itself translates image addresses (x86-64: __START_KERNEL_map -
 * phys_base, arm64: kimage_voffset, elsewhere the direct map).
 */
static long physcap_ioctl_kernel_map(void __user *arg)
{
	unsigned long image_virt = (unsigned long)&init_task;
	struct physcap_kernel_map map = {
		.direct_map_virt = (u64)PAGE_OFFSET,
		.direct_map_start = (u64)__pa(PAGE_OFFSET),
		.direct_map_end = (u64)__pa((unsigned long)high_memory - 1) + 1,
		.image_offset = (u64)image_virt - (u64)__pa_symbol(&init_task),
	};

	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;
	if (copy_to_user(arg, &map, sizeof(map)))
		return -EFAULT;
	return 0;
}

static long physcap_ioctl_write(void __user *arg)
{
	struct physcap_write req;
	int ret;

	/* Checked per call too: the fd may have been handed to another. */
	if (!capable(CAP_SYS_RAWIO))
		return -EPERM;
	if (copy_from_user(&req, arg, sizeof(req)))
		return -EFAULT;

	ret = physcap_write(&req);

	/* Progress is reported also when the write stopped part-way. */
	if (copy_to_user(arg, &req, sizeof(req)))
		return -EFAULT;
	return ret;
}

static long physcap_ioctl(struct file *file, unsigned int cmd,
			  unsigned long arg)
{
	struct physcap_file *pf = file->private_data;
	void __user *uarg = (void __user *)arg;

	switch (cmd) {
	case PHYSCAP_IOC_INFO:
		return physcap_ioctl_info(uarg);
	case PHYSCAP_IOC_WRITE:
		return physcap_ioctl_write(uarg);
	case PHYSCAP_IOC_ARM:
		return physcap_ioctl_arm(&pf->client, uarg);
	case PHYSCAP_IOC_DISARM:
		return physcap_ioctl_disarm(&pf->client, uarg);
	case PHYSCAP_IOC_ARM_STATUS:
		return physcap_ioctl_arm_status(uarg);
	case PHYSCAP_IOC_KERNEL_MAP:
		return physcap_ioctl_kernel_map(uarg);
	default:
		return -ENOTTY;
	}
}

static const struct file_operations physcap_fops = {
	.owner = THIS_MODULE,
	.open = physcap_open,
	.release = physcap_release,
	.read = physcap_read,
	.poll = physcap_poll,
	.unlocked_ioctl = physcap_ioctl,
	.compat_ioctl = compat_ptr_ioctl,
	.mmap = physcap_mmap,
	.llseek = noop_llseek,
	PHYSCAP_FOP_UNSIGNED_OFFSET
};

#define PHYSCAP_STAT_ATTR(name)						\
static ssize_t name##_show(struct device *dev,				\
			   struct device_attribute *attr, char *buf)	\
{									\
	return sysfs_emit(buf, "%lld\n",				\
			  atomic64_read(&physcap_stats.name));		\
}									\
static DEVICE_ATTR_RO(name)

PHYSCAP_STAT_ATTR(bytes_zero_copy);
PHYSCAP_STAT_ATTR(bytes_bounced);
PHYSCAP_STAT_ATTR(bytes_poisoned);
PHYSCAP_STAT_ATTR(bytes_buffered);
PHYSCAP_STAT_ATTR(bytes_adopted);
PHYSCAP_STAT_ATTR(writes_done);
PHYSCAP_STAT_ATTR(writes_failed);
PHYSCAP_STAT_ATTR(writes_interrupted);

static ssize_t abi_version_show(struct device *dev,
				struct device_attribute *attr, char *buf)
{
	return sysfs_emit(buf, "%d\n", PHYSCAP_ABI_VERSION);
}
static DEVICE_ATTR_RO(abi_version);

static struct attribute *physcap_attrs[] = {
	&dev_attr_abi_version.attr,
	&dev_attr_bytes_zero_copy.attr,
	&dev_attr_bytes_bounced.attr,
	&dev_attr_bytes_poisoned.attr,
	&dev_attr_bytes_buffered.attr,
	&dev_attr_bytes_adopted.attr,
	&dev_attr_writes_done.attr,
	&dev_attr_writes_failed.attr,
	&dev_attr_writes_interrupted.attr,
	NULL,
};
ATTRIBUTE_GROUPS(physcap);

static struct miscdevice physcap_misc = {
	.minor = MISC_DYNAMIC_MINOR,
	.name = PHYSCAP_DEVICE_NAME,
	.fops = &physcap_fops,
	.groups = physcap_groups,
	.mode = 0600,
};

static int __init physcap_init(void)
{
	int ret;

	ret = physcap_arm_init();
	if (ret)
		return ret;
	ret = misc_register(&physcap_misc);
	if (ret) {
		pr_err("cannot register /dev/%s: %d\n",
		       PHYSCAP_DEVICE_NAME, ret);
		goto err_arm;
	}
	ret = physcap_governor_register();
	if (ret)
		goto err_misc;
	pr_info("version %s, ABI %d, /dev/%s ready%s\n",
		PHYSCAP_VERSION, PHYSCAP_ABI_VERSION, PHYSCAP_DEVICE_NAME,
		physcap_governor_registered() ?
		", pretimeout governor \"physcap\" registered" : "");
	return 0;

err_misc:
	misc_deregister(&physcap_misc);
err_arm:
	physcap_arm_exit();
	return ret;
}

/*
 * No descriptor is open (each holds a module reference), so the only arms
 * left are captures still running after their descriptor closed.
 */
static void __exit physcap_exit(void)
{
	misc_deregister(&physcap_misc);
	physcap_governor_unregister();	/* nothing fires after this */
	physcap_arm_exit();		/* stops and waits for running captures */
	physcap_adopt_release_all();	/* no I/O from adopted pages is left */
}

module_init(physcap_init);
module_exit(physcap_exit);

MODULE_DESCRIPTION("Zero-copy physical memory capture to O_DIRECT files and block devices");
MODULE_AUTHOR("physcap developers");
MODULE_LICENSE("GPL");
MODULE_VERSION(PHYSCAP_VERSION);
