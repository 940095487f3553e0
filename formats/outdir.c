/* Output directories of the checkpoint writers: the emptiness check and the cleanup of a
 * directory a writer built. */
#include "formats/outdir.h"
#include "llmsq/runtime.h"

#include <dirent.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

llmsq_status llmsq_output_dir_check(const char *dir)
{
    struct stat st;
    if (stat(dir, &st) != 0)
        return errno == ENOENT ? LLMSQ_OK : llmsq_error(LLMSQ_STATUS_IO, "cannot access %s: %s", dir, strerror(errno));
    if (!S_ISDIR(st.st_mode)) return llmsq_error(LLMSQ_STATUS_ARG, "output %s exists and is not a directory", dir);
    DIR *d = opendir(dir);
    if (!d) return llmsq_error(LLMSQ_STATUS_IO, "cannot open %s: %s", dir, strerror(errno));
    bool empty = true;
    struct dirent *e;
    while (empty && (e = readdir(d)) != NULL) empty = strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0;
    closedir(d);
    if (!empty)
        return llmsq_error(LLMSQ_STATUS_ARG, "output directory %s exists and is not empty (refusing to overwrite)", dir);
    return LLMSQ_OK;
}

llmsq_status llmsq_outdir_remove_ours(const char *dir, bool (*is_ours)(const char *name), const char *who)
{
    DIR *d = opendir(dir);
    if (!d) return llmsq_error(LLMSQ_STATUS_IO, "cannot open %s: %s", dir, strerror(errno));
    bool foreign = false;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        char base[256];
        size_t n = strlen(e->d_name);
        bool ours = n < sizeof base;
        if (ours) {
            memcpy(base, e->d_name, n + 1);
            if (n > 4 && strcmp(base + n - 4, ".tmp") == 0) base[n - 4] = '\0';
            ours = is_ours(base);
        }
        if (!ours) {
            foreign = true;
            continue;
        }
        char *p = llmsq_path_join(dir, e->d_name);
        if (p) unlink(p);
        free(p);
    }
    closedir(d);
    if (foreign) return llmsq_error(LLMSQ_STATUS_ARG, "%s holds files %s did not write; remove it", dir, who);
    if (rmdir(dir) != 0) return llmsq_error(LLMSQ_STATUS_IO, "cannot remove %s: %s", dir, strerror(errno));
    return LLMSQ_OK;
}
