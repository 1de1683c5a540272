// deltahook entry point; the command table arrives with the Foundation issue.
import Foundation
FileHandle.standardError.write(Data("deltahook: not built yet\n".utf8))
exit(1)
