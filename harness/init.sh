#!/bin/busybox sh
# PID 1 of the emulated board.  Loads the drivers, shares the host's root
# read-only over 9p as the guest's root (so node and the project run
# unchanged), mounts the scratch disk, runs the job and powers off.
# The host talks to it only through the 9p "job" share.
/bin/busybox --install -s /bin
export PATH=/bin

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev

for m in $(cat /modules/order); do
	insmod "/modules/$m.ko" 2>/dev/null || echo "board: insmod $m failed"
done

fail() {
	echo "board: $*"
	echo "PHYSCAP-BOARD-FAILED: $*"
	poweroff -f
}

new=/newroot
mkdir -p $new
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000,cache=loose,ro hostroot $new ||
	fail "cannot mount the host root over 9p"
mount -t proc proc $new/proc
mount -t sysfs sysfs $new/sys
mount -t devtmpfs devtmpfs $new/dev
# /tmp stays the host's (read-only): the checkout may live there.
mount -t tmpfs -o mode=755 tmpfs $new/run
[ -d $new/dev/shm ] && mount -t tmpfs -o mode=1777 tmpfs $new/dev/shm

board=$new/run/physcap-board
mkdir -p $board/job $board/disk $board/tmp
chmod 1777 $board/tmp
mount -t 9p -o trans=virtio,version=9p2000.L,msize=512000 job $board/job ||
	fail "cannot mount the job share"
mount -t ext4 -o noatime /dev/vda $board/disk || fail "cannot mount the scratch disk"

cd $new
echo "PHYSCAP-BOARD-JOB-START"
chroot $new /bin/sh -c 'cd /run/physcap-board/job && exec env -i \
	PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
	HOME=/run/physcap-board/tmp TMPDIR=/run/physcap-board/tmp \
	PHYSCAP_BOARD=1 \
	PHYSCAP_BOARD_JOB=/run/physcap-board/job \
	PHYSCAP_BOARD_DISK=/run/physcap-board/disk \
	PHYSCAP_BOARD_RAW=/dev/vdb \
	PHYSCAP_BOARD_SLOW=/dev/vdc \
	./job.sh' > $board/job/output.log 2>&1
echo $? > $board/job/exit-code
dmesg > $board/job/dmesg.log
sync
umount $board/disk
umount $board/job
echo "PHYSCAP-BOARD-DONE"
poweroff -f
