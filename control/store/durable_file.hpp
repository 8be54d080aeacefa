// Writing a whole small file so that a crash leaves either the old content or the new, never a mix: write a
// temporary beside it, fsync it, rename it over the old, fsync the directory. The approval store's snapshot
// and the API's token file use it.
#pragma once

#include <filesystem>
#include <string>

namespace portcullis {

// "" when `content` is durably at `path`, else one line saying what failed (the old file is then intact and
// no temporary is left behind).
std::string write_file_durably(const std::filesystem::path& path, const std::string& content,
                               int mode = 0640);
// fsync of a directory: "" or what failed.
std::string fsync_dir(const std::filesystem::path& dir);
// write(2) until all of `data` is written: false with errno set (ENOSPC for a write of 0).
bool write_all(int fd, const std::string& data);

}  // namespace portcullis
