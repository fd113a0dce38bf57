import test from 'ava'
import { devicesMountedBelow } from '../../src/mount/proc-mounts.js'

// Two lines of a pod's /proc/self/mountinfo: the runtime directory is a volume on the node's disk
// (8:1, which also backs loop devices that are not ours), and one of our FUSE files below it.
const MOUNTINFO = [
  '2108 2100 8:1 /var/lib/kubelet/pods/x/volumes/encfs /run/encfs rw,relatime - ext4 /dev/sda1 rw',
  '2150 2108 0:77 / /run/encfs/0 rw,nosuid,nodev,relatime - fuse.encfs encfs rw,user_id=0,group_id=0',
  '2151 2108 0:78 / /run/encfs/1\\040odd rw - fuse encfs rw',
  '2152 2100 0:79 / /run/encfs-other/0 rw - fuse.encfs encfs rw',
  '',
].join('\n')

test('our loop devices are backed only by mounts below the runtime directory (its FUSE files), never by the disk the directory itself is on', async (t) => {
  t.deepEqual([...(await devicesMountedBelow('/run/encfs', MOUNTINFO))].sort(), ['0:77', '0:78'])
})
