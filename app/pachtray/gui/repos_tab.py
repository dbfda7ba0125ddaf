"""The window's Repositories tab: projects ▸ repos, a repo's branches, a branch's commits and a
commit's files, each listing loaded page by page on workers and kept current by the change feed;
repo and branch admin on the embedded server; files dropped on a branch are uploaded there."""

from __future__ import annotations

from PySide6.QtCore import QItemSelectionModel, QModelIndex, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPushButton, QSizePolicy, QSplitter,
    QTableView, QTreeView, QVBoxLayout, QWidget,
)

from pachtray.gui import dialogs
from pachtray.gui.controller import Controller
from pachtray.gui.models import BranchesModel, CommitsModel, FilesModel, RepoTreeModel
from pachtray.gui.upload_progress import UploadProgress
from pachtray.pfs import names


def _name_problem(value: str, what: str) -> str | None:
    if not value:
        return f"Enter a {what} name."
    if not names.is_name(value):
        return f"A {what} name uses letters, digits, '_' or '-'."
    return None



class ElidedLabel(QLabel):
    """One line that fits the width it is given, cut in the middle with "…" (the whole text is its
    tooltip): a 255-character repo or branch name must not widen the window past the screen."""

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self._full = ""
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)

    def setText(self, text: str) -> None:  # noqa: N802 - Qt's name
        self._full = text
        self.setToolTip(text)
        self._fit()

    def full_text(self) -> str:
        return self._full

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt's name
        super().resizeEvent(event)
        self._fit()

    def _fit(self) -> None:
        super().setText(self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideMiddle, max(self.width(), 40)))

class BranchTable(QTableView):
    """The branch list; dropping local files or folders on a branch uploads them there."""

    files_dropped = Signal(int, list)  # row, local paths

    def __init__(self, parent=None):
        super().__init__(parent)
        self.setAcceptDrops(True)
        self.uploads_enabled = False

    def _paths(self, event) -> list[str]:
        mime = event.mimeData()
        if not self.uploads_enabled or not mime.hasUrls():
            return []
        urls = mime.urls()
        return [u.toLocalFile() for u in urls] if urls and all(u.isLocalFile() for u in urls) else []

    def dragEnterEvent(self, event) -> None:
        if self._paths(event):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dragMoveEvent(self, event) -> None:
        row = self.indexAt(event.position().toPoint()).row()
        if self._paths(event) and (row >= 0 or self.currentIndex().isValid()):
            event.acceptProposedAction()
        else:
            event.ignore()

    def dropEvent(self, event) -> None:
        paths = self._paths(event)
        row = self.indexAt(event.position().toPoint()).row()
        if row < 0:
            row = self.currentIndex().row()
        if paths and row >= 0:
            event.acceptProposedAction()
            self.files_dropped.emit(row, paths)
        else:
            event.ignore()


def _table(model, parent, widths: tuple[int | None, ...]) -> QTableView:
    view = QTableView(parent)
    _setup_table(view, model, widths)
    return view


def _setup_table(view: QTableView, model, widths: tuple[int | None, ...]) -> None:
    """Fixed widths (None = this column takes the rest): no per-row measuring on huge models."""
    view.setModel(model)
    header = view.horizontalHeader()
    for column, width in enumerate(widths):
        if width is None:
            header.setSectionResizeMode(column, QHeaderView.ResizeMode.Stretch)
        else:
            header.resizeSection(column, width)
    view.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
    view.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
    view.verticalHeader().setVisible(False)
    view.verticalHeader().setDefaultSectionSize(22)
    view.setAlternatingRowColors(True)
    view.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)


class ReposTab(QWidget):
    """Follows the selection chain repo -> branch -> commit -> folder; says what happened through
    `message` (the window's status bar)."""

    message = Signal(str, int)  # text, milliseconds

    def __init__(self, controller: Controller, parent: QWidget | None = None):
        super().__init__(parent)
        self.controller = controller
        self._repo: dict | None = None
        self._branch: str | None = None
        self._commit: str | None = None
        self._folder = "/"
        self._reselecting = False
        self._branches_of: tuple[str, str] | None = None  # the repo whose branches the model lists
        split = QSplitter(Qt.Orientation.Horizontal, self)
        outer = QVBoxLayout(self)
        outer.addWidget(split)

        left = QWidget(split)
        lv = QVBoxLayout(left)
        lv.setContentsMargins(0, 0, 0, 0)
        self.filter_edit = QLineEdit(left)
        self.filter_edit.setPlaceholderText("Filter projects and repos…")
        self.filter_edit.setClearButtonEnabled(True)
        self.filter_edit.textChanged.connect(self._on_filter)
        lv.addWidget(self.filter_edit)
        self.repo_model = RepoTreeModel(self)
        self.repo_tree = QTreeView(left)
        self.repo_tree.setModel(self.repo_model)
        self.repo_tree.setUniformRowHeights(True)
        self.repo_tree.setAlternatingRowColors(True)
        self.repo_tree.header().setSectionResizeMode(0, QHeaderView.ResizeMode.Interactive)
        self.repo_tree.setColumnWidth(0, 190)
        self.repo_tree.setColumnWidth(1, 80)
        self.repo_tree.setColumnWidth(2, 80)
        self.repo_tree.selectionModel().currentChanged.connect(self._on_repo_selected)
        lv.addWidget(self.repo_tree)
        self.repos_label = QLabel("", left)
        self.repos_label.setWordWrap(True)
        lv.addWidget(self.repos_label)
        row = QHBoxLayout()
        self.new_repo_button = QPushButton("New repo…", left)
        self.new_repo_button.clicked.connect(self.new_repo)
        self.delete_repo_button = QPushButton("Delete repo…", left)
        self.delete_repo_button.clicked.connect(self.delete_repo)
        row.addWidget(self.new_repo_button)
        row.addWidget(self.delete_repo_button)
        row.addStretch(1)
        lv.addLayout(row)

        right = QSplitter(Qt.Orientation.Vertical, split)
        # branches
        box = QGroupBox("Branches", right)
        bv = QVBoxLayout(box)
        self.branches_model = BranchesModel(self.controller.tasks, self)
        self.branch_table = BranchTable(box)
        _setup_table(self.branch_table, self.branches_model, (140, 110, 150, None))
        self.branch_table.selectionModel().currentRowChanged.connect(self._on_branch_selected)
        self.branch_table.files_dropped.connect(self._on_files_dropped)
        bv.addWidget(self.branch_table)
        row = QHBoxLayout()
        self.mount_ro_button = QPushButton("Mount read-only", box)
        self.mount_ro_button.clicked.connect(lambda: self.mount_branch("ro"))
        self.mount_rw_button = QPushButton("Mount read-write", box)
        self.mount_rw_button.clicked.connect(lambda: self.mount_branch("rw"))
        self.new_branch_button = QPushButton("New branch…", box)
        self.new_branch_button.clicked.connect(self.new_branch)
        self.delete_branch_button = QPushButton("Delete branch…", box)
        self.delete_branch_button.clicked.connect(self.delete_branch)
        for b in (self.mount_ro_button, self.mount_rw_button, self.new_branch_button, self.delete_branch_button):
            row.addWidget(b)
        row.addStretch(1)
        bv.addLayout(row)
        self.drop_hint = QLabel("", box)
        self.drop_hint.setStyleSheet("color: #5f6368")
        bv.addWidget(self.drop_hint)
        # commits
        box = QGroupBox("Commits", right)
        cv = QVBoxLayout(box)
        self.commits_model = CommitsModel(self.controller.tasks, self)
        self.commit_table = _table(self.commits_model, box, (110, 150, None, 90))
        self.commit_table.selectionModel().currentRowChanged.connect(self._on_commit_selected)
        cv.addWidget(self.commit_table)
        row = QHBoxLayout()
        self.mount_commit_button = QPushButton("Mount this commit", box)
        self.mount_commit_button.clicked.connect(self.mount_commit)
        row.addWidget(self.mount_commit_button)
        row.addStretch(1)
        cv.addLayout(row)
        # files
        box = QGroupBox("Files", right)
        fv = QVBoxLayout(box)
        row = QHBoxLayout()
        self.up_button = QPushButton("Up", box)
        self.up_button.clicked.connect(self.folder_up)
        self.folder_label = ElidedLabel(box)
        row.addWidget(self.up_button)
        row.addWidget(self.folder_label, 1)
        fv.addLayout(row)
        self.files_model = FilesModel(self.controller.tasks, self)
        self.file_table = _table(self.files_model, box, (None, 70, 90))
        self.file_table.doubleClicked.connect(self._on_file_activated)
        fv.addWidget(self.file_table)
        for model in (self.branches_model, self.commits_model, self.files_model):
            model.failed.connect(lambda message: self.message.emit(message, 10000))

        split.setStretchFactor(0, 2)
        split.setStretchFactor(1, 3)
        split.setSizes([460, 720])
        right.setSizes([200, 240, 280])

        self.uploads = UploadProgress(controller, self)
        self.uploads.committed.connect(self._upload_committed)
        self.uploads.busy_message.connect(lambda text: self.message.emit(text, 5000))

        controller.repos_changed.connect(self._on_repos)
        controller.cluster_changed.connect(self.follow_cluster)
        self.branches_model.reloaded.connect(self._branches_reloaded)
        self.commits_model.reloaded.connect(lambda: self._reselect(self.commit_table, "id", self._commit))
        self._update_buttons()
        self._on_repos()

    def reload(self) -> None:
        """Refresh pressed: the selected repo's branches again (the repos come with the controller's)."""
        if self._repo is not None:
            self._load_branches()

    def on_status(self) -> None:
        self.repo_tree.setColumnHidden(2, self.controller.status.auth == "off")
        self._update_buttons()

    def _on_repos(self) -> None:
        self._relist(lambda: self.repo_model.set_listing(self.controller.repos))

    def _on_filter(self, text: str) -> None:
        self._relist(lambda: self.repo_model.set_filter(text))

    def _relist(self, change) -> None:
        """Change what the repo tree lists, keeping the selected repo selected, or letting it go
        (and what hangs off it) when it is no longer listed (deleted, or filtered out)."""
        keep = (self._repo["project"], self._repo["repo"]) if self._repo else None
        change()
        if self.repo_model.rowCount() <= 20:
            self.repo_tree.expandAll()
        self._show_repo_count()
        if keep:
            index = self.repo_model.index_of(*keep)
            if index.isValid():
                self.repo_tree.selectionModel().setCurrentIndex(
                    index, QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
            else:
                self._select_repo(None)

    def _show_repo_count(self) -> None:
        if self.controller.repos_error:
            error = self.controller.repos_error.rstrip(".")
            if self.controller.repos.get("repos"):
                self.repos_label.setText(f"Cannot list repos ({error}). The last listing is shown.")
            else:
                self.repos_label.setText(f"Cannot list repos: {error}")
            return
        listing = self.controller.repos
        total, shown = len(listing.get("repos", [])), self.repo_model.total_repos()
        count = f"{shown} of {total}" if shown != total else f"{total}"
        projects = len(listing.get("projects", []))
        self.repos_label.setText(f"{count} repo{'s' if total != 1 else ''} in {projects} "
                                 f"project{'s' if projects != 1 else ''}")

    def select_repo(self, project: str, repo: str) -> bool:
        """Select a repo in the tree (screenshots and tests pick one this way)."""
        index = self.repo_model.index_of(project, repo)
        if not index.isValid():
            return False
        self.repo_tree.setCurrentIndex(index)
        return True

    # ------------------------------------------------------------- selection chain

    def _on_repo_selected(self, current: QModelIndex, _previous=None) -> None:
        self._select_repo(self.repo_model.repo_at(current))

    def _select_repo(self, repo: dict | None) -> None:
        if repo is not None and repo.get("authorization") == "none":
            self.message.emit(repo.get("access_reason", "no access"), 10000)
            repo = None
        same = repo is not None and self._repo is not None and (repo["project"], repo["repo"]) == (
            self._repo["project"], self._repo["repo"])
        self._repo = repo
        if same:
            return
        self._branch = self._commit = None
        self._load_branches()
        self.commits_model.reset(None)
        self._show_files(None, "/")  # (also clears the folder shown above the files)
        self._update_buttons()

    def _load_branches(self) -> None:
        """The selected repo's branches: read again, keeping the selected one, when they are the ones
        shown (a refresh, a new or deleted branch, an upload); else listed anew."""
        repo = self._repo
        key = None if repo is None else (repo["project"], repo["repo"])
        if key is not None and key == self._branches_of:
            self.branches_model.reload()  # `reloaded` selects the same branch again (_branches_reloaded)
            return
        self._branches_of = key
        self.branches_model.reset(None if repo is None else self.controller.branches_loader(*key))

    def follow_cluster(self) -> None:
        """Someone changed the cluster: read the shown branches, commits and files again (on
        workers), keeping what the user selected."""
        for model in (self.branches_model, self.commits_model, self.files_model):
            model.reload()

    def _branches_reloaded(self) -> None:
        if self._branch is not None and self.branches_model.find("name", self._branch) < 0:
            self._branch = self._commit = None  # deleted elsewhere: nothing hangs off it any more
            self.commits_model.reset(None)
            self._show_files(None, "/")
            self._update_buttons()
            return
        self._reselect(self.branch_table, "name", self._branch)

    def _reselect(self, table: QTableView, column: str, value) -> None:
        """Select the row that was selected before a reload, without reloading what hangs off it."""
        row = table.model().find(column, value) if value is not None else -1
        if row < 0:
            return
        self._reselecting = True
        try:
            table.selectionModel().setCurrentIndex(
                table.model().index(row, 0),
                QItemSelectionModel.SelectionFlag.ClearAndSelect | QItemSelectionModel.SelectionFlag.Rows)
        finally:
            self._reselecting = False

    def _on_branch_selected(self, current: QModelIndex, _previous=None) -> None:
        if not current.isValid() or self._repo is None or self._reselecting:
            return
        self._branch = self.branches_model.row(current.row())["name"]
        self._commit = None
        self.commits_model.reset(self.controller.commits_loader(self._repo["project"], self._repo["repo"],
                                                                self._branch))
        self._show_files(None, "/")
        self._update_buttons()

    def _on_commit_selected(self, current: QModelIndex, _previous=None) -> None:
        if not current.isValid() or self._reselecting:
            return
        self._commit = self.commits_model.row(current.row())["id"]
        self._show_files(self._commit, "/")
        self._update_buttons()

    def _show_files(self, commit: str | None, folder: str) -> None:
        """List a folder of a commit (or of the selected branch's head when no commit is chosen)."""
        self._folder = folder
        repo, branch = self._repo, self._branch
        if repo is None or (commit is None and branch is None):
            self.files_model.reset(None)
            self.folder_label.setText("")
            return
        where = commit[:12] if commit else f"{branch} (head)"
        self.folder_label.setText(f"{repo['repo']}@{where}:{folder}")
        self.files_model.reset(self.controller.files_loader(repo["project"], repo["repo"], folder, commit=commit,
                                                            branch=branch))
        self.up_button.setEnabled(folder != "/")

    def _on_file_activated(self, index: QModelIndex) -> None:
        row = self.files_model.row(index.row())
        if row["type"] == "dir":
            self._show_files(self._commit, row["path"].rstrip("/") or "/")

    def folder_up(self) -> None:
        parent = self._folder.rstrip("/").rsplit("/", 1)[0] or "/"
        self._show_files(self._commit, parent)

    # ------------------------------------------------------------- actions

    def _update_buttons(self) -> None:
        status = self.controller.status
        answering = status.reachable and status.connection == "connected"  # a frozen cluster: wait, not try
        local = status.local and answering
        has_repo = self._repo is not None
        writable = has_repo and self._repo.get("authorization") in ("off", "write")
        self.new_repo_button.setEnabled(local)
        self.delete_repo_button.setEnabled(local and has_repo)
        why = "" if local else "The cluster does not answer" if status.local else "Only on the embedded local server"
        for b in (self.new_repo_button, self.delete_repo_button, self.new_branch_button, self.delete_branch_button):
            b.setToolTip(why)
        self.mount_ro_button.setEnabled(answering and has_repo and self._branch is not None)
        self.mount_rw_button.setEnabled(answering and has_repo and writable)
        # (no branch chosen: an empty repo has none yet; its first commit makes master)
        self.mount_rw_button.setToolTip("" if self._branch is not None else
                                        "Mounts master read-write (the first commit makes it if it does not exist)")
        self.new_branch_button.setEnabled(local and has_repo)
        self.delete_branch_button.setEnabled(local and self._branch is not None)
        self.mount_commit_button.setEnabled(answering and self._commit is not None)
        self.branch_table.uploads_enabled = local and writable
        self.drop_hint.setText("Drop files or folders on a branch to commit them there." if local and has_repo else "")
        self.up_button.setEnabled(self._folder != "/")

    def mount_branch(self, mode: str) -> None:
        if self._repo is None:
            return
        self.controller.mount(self._repo["project"], self._repo["repo"], branch=self._branch or "master", mode=mode)

    def mount_commit(self) -> None:
        if self._repo is not None and self._commit:
            self.controller.mount(self._repo["project"], self._repo["repo"], commit=self._commit, mode="ro")

    def new_repo(self) -> None:
        project = self.repo_model.project_at(self.repo_tree.currentIndex()) or "default"

        def accept(values):
            problem = _name_problem(values["project"], "project") or _name_problem(values["repo"], "repo")
            if problem:
                return problem
            # the dialog stays until the server says yes: a name it refuses is shown there, typed text kept
            self.controller.create_repo(values["project"], values["repo"], values["description"],
                                        then=lambda _: dialog.finish(None), failed_to=lambda e: dialog.finish(str(e)))
            return dialogs.FormDialog.WAIT

        dialog = dialogs.FormDialog(self, "New repo", [("project", "Project", project), ("repo", "Repo name", ""),
                                                       ("description", "Description", "")], accept)
        dialog.open()
        return dialog

    def delete_repo(self):
        if self._repo is None:
            return None
        project, repo = self._repo["project"], self._repo["repo"]
        self.controller.may_delete(project, repo, None, lambda: dialogs.confirm(
            self, "Delete repo", f"Delete {project}/{repo} and all its commits?",
            lambda: self.controller.delete_repo(project, repo), yes="Delete", informative="This cannot be undone.",
            icon=dialogs.QMessageBox.Icon.Warning))

    def new_branch(self):
        if self._repo is None:
            return None
        project, repo = self._repo["project"], self._repo["repo"]

        def accept(values):
            problem = _name_problem(values["branch"], "branch")
            if values["from"]:
                problem = problem or _name_problem(values["from"], "branch")
            if problem:
                return problem
            self.controller.create_branch(project, repo, values["branch"], values["from"],
                                          then=lambda _: (dialog.finish(None), self._load_branches()),
                                          failed_to=lambda e: dialog.finish(str(e)))
            return dialogs.FormDialog.WAIT

        dialog = dialogs.FormDialog(self, "New branch", [("branch", "Branch name", ""),
                                                         ("from", "Start at branch", self._branch or "")], accept)
        dialog.open()
        return dialog

    def delete_branch(self):
        if self._repo is None or self._branch is None:
            return None
        project, repo, branch = self._repo["project"], self._repo["repo"], self._branch
        self.controller.may_delete(project, repo, branch, lambda: dialogs.confirm(
            self, "Delete branch", f"Delete branch {branch} of {project}/{repo}?",
            lambda: self.controller.delete_branch(project, repo, branch, then=lambda _: self._load_branches()),
            yes="Delete", informative="The commits stay; only the branch name goes.",
            icon=dialogs.QMessageBox.Icon.Warning))

    # ------------------------------------------------------------- upload (drag and drop)

    def _on_files_dropped(self, row: int, paths: list[str]) -> None:
        self.upload(self.branches_model.row(row)["name"], paths)

    def upload(self, branch: str, paths: list[str]) -> None:
        if self._repo is not None:
            self.uploads.start(self._repo["project"], self._repo["repo"], branch, paths)

    def _upload_committed(self, _job: dict) -> None:
        self.controller.refresh_repos()
        self._load_branches()
