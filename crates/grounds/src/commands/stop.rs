//! `grounds stop ID`: a job launched elsewhere (on SageMaker) is asked to stop, through the mode that
//! launched it.

use super::Exit;
use crate::executors::Reattach;
use crate::printer::{Printer, Reporter};
use crate::store::results::Store;

pub fn run(id: String, printer: &Printer) -> anyhow::Result<Exit> {
    let store = Store::from_env();
    let id = store.resolve(&id)?;
    let record = store.read(&id)?.job;
    crate::executors::check_reattachable(&record)?;
    super::block_on(async {
        let mode = crate::executors::reattach_to(&record).await?;
        mode.stop(&record).await
    })??;
    printer.stage(
        "Stopping",
        &format!(
            "{id}: SageMaker sends SIGTERM, then SIGKILL after 120 s; `grounds results fetch {id}` brings \
             home what it left"
        ),
    );
    printer.json(&crate::answers::schema::StopAnswer {
        id: id.clone(),
        stopping: true,
    });
    Ok(Exit::Success)
}
